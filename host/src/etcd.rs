//! A small etcd v3 client over etcd's JSON gateway (`POST /v3/kv/range` and friends, keys and
//! values base64, `/v3/watch` streaming JSON lines): what discovery and config need, with the HTTP client the gateway already has.
//! (The gRPC client crate needs `protoc` to build, which a machine with only the Rust toolchain
//! lacks.)

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd endpoint answered ({0})")]
    Unreachable(String),
    #[error("etcd answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("etcd's answer is not what was expected: {0}")]
    Answer(String),
}

#[derive(Debug, Clone)]
pub struct Etcd {
    /// `host:port` of each endpoint, tried in turn.
    endpoints: Vec<String>,
}

impl Etcd {
    /// From `http://host:port` endpoints (the scheme is optional).
    pub fn new(endpoints: &[String]) -> Etcd {
        Etcd {
            endpoints: endpoints
                .iter()
                .map(|e| {
                    e.trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string()
                })
                .collect(),
        }
    }

    /// Every key under `prefix` with its value, as text.
    pub async fn prefix(&self, prefix: &str) -> Result<Vec<(String, String)>, EtcdError> {
        let body = json!({
            "key": B64.encode(prefix),
            "range_end": B64.encode(prefix_end(prefix.as_bytes())),
        });
        let answer = self.call("/v3/kv/range", &body).await?;
        let text = |v: &Value| -> Option<String> {
            let bytes = B64.decode(v.as_str()?).ok()?;
            String::from_utf8(bytes).ok()
        };
        Ok(answer["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .filter_map(|kv| Some((text(&kv["key"])?, text(&kv["value"])?)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Watches every key under `prefix`: sends a tick once the watch stands (so the caller can
    /// read what changed before it) and one for every batch of changes, until the stream ends.
    pub async fn watch(
        &self,
        prefix: &str,
        ticks: &tokio::sync::mpsc::Sender<()>,
    ) -> Result<(), EtcdError> {
        let body = json!({
            "create_request": {
                "key": B64.encode(prefix),
                "range_end": B64.encode(prefix_end(prefix.as_bytes())),
            }
        });
        let resp = self.open("/v3/watch", &body).await?;
        let mut body = resp.into_body();
        let mut buf = Vec::new();
        // The gateway streams one JSON message per line.
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| EtcdError::Unreachable(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let Ok(msg) = serde_json::from_slice::<Value>(&line) else {
                    continue;
                };
                let result = &msg["result"];
                if result["canceled"].as_bool() == Some(true) {
                    return Err(EtcdError::Answer(format!("the watch was canceled: {msg}")));
                }
                let changed = result["events"].as_array().is_some_and(|e| !e.is_empty());
                if (changed || result["created"].as_bool() == Some(true))
                    && ticks.send(()).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        Err(EtcdError::Unreachable("the watch stream ended".into()))
    }

    /// One call to the first endpoint that answers.
    pub async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let bytes =
            tokio::time::timeout(TIMEOUT, self.open(path, body).await?.into_body().collect())
                .await
                .map_err(|_| EtcdError::Unreachable(format!("no whole answer within {TIMEOUT:?}")))?
                .map_err(|e| EtcdError::Unreachable(e.to_string()))?
                .to_bytes();
        serde_json::from_slice(&bytes).map_err(|e| EtcdError::Answer(e.to_string()))
    }

    /// The response head of the first endpoint that answers; etcd's own refusal is final.
    async fn open(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<http::Response<hyper::body::Incoming>, EtcdError> {
        let mut last = String::from("no endpoint configured");
        for ep in &self.endpoints {
            match tokio::time::timeout(TIMEOUT, send(ep, path, body)).await {
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(e @ (EtcdError::Status { .. } | EtcdError::Answer(_)))) => return Err(e),
                Ok(Err(e)) => last = format!("{ep}: {e}"),
                Err(_) => last = format!("{ep}: no answer within {TIMEOUT:?}"),
            }
        }
        Err(EtcdError::Unreachable(last))
    }
}

/// Sends one call; an answer that is not a success is an error with etcd's words.
async fn send(
    endpoint: &str,
    path: &str,
    body: &Value,
) -> Result<http::Response<hyper::body::Incoming>, EtcdError> {
    let unreachable = |e: &dyn std::fmt::Display| EtcdError::Unreachable(e.to_string());
    let tcp = TcpStream::connect(endpoint)
        .await
        .map_err(|e| unreachable(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| unreachable(&e))?;
    tokio::spawn(conn);
    let req = Request::post(path)
        .header(header::HOST, endpoint)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .map_err(|e| EtcdError::Answer(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(&e))?;
    let status = resp.status();
    if !status.is_success() {
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        return Err(EtcdError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    Ok(resp)
}

/// The end of the key range of a prefix: the prefix with its last byte that is not 0xff
/// incremented (etcd's `clientv3.GetPrefixRangeEnd`).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff (or empty): every key from the prefix on.
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_end_of_a_prefix() {
        assert_eq!(prefix_end(b"/services/api/"), b"/services/api0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
