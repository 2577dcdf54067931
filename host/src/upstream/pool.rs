//! Connections to one target: a LIFO stack of idle HTTP/1.1 connections, or one shared HTTP/2
//! connection. Lighter than a general-purpose client (no per-request hashing, connector clones or
//! extra tasks): a checkout is a mutex pop, a return is a push.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Body, UpstreamError};

/// How to open a connection to a target of one upstream.
pub struct Connector {
    pub tls: Option<(TlsConnector, Option<ServerName<'static>>)>,
    pub http2: bool,
    pub connect_timeout: Duration,
}

pub enum Sender {
    H1(http1::SendRequest<Body>),
    H2(http2::SendRequest<Body>),
}

struct Idle {
    sender: http1::SendRequest<Body>,
    since: Instant,
}

#[derive(Default)]
pub struct TargetPool {
    idle: Mutex<Vec<Idle>>,
    h2: Mutex<Option<http2::SendRequest<Body>>>,
}

impl std::fmt::Debug for TargetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = self.idle.lock().map_or(0, |i| i.len());
        f.debug_struct("TargetPool").field("idle", &idle).finish()
    }
}

impl TargetPool {
    pub fn idle_count(&self) -> usize {
        self.idle.lock().map_or(0, |i| i.len())
    }

    /// A live pooled connection, if any; stale ones are dropped on the way.
    pub fn take(&self, idle_timeout: Duration) -> Option<Sender> {
        if let Ok(h2) = self.h2.lock()
            && let Some(s) = h2.as_ref()
            && !s.is_closed()
        {
            return Some(Sender::H2(s.clone()));
        }
        let mut idle = self.idle.lock().ok()?;
        while let Some(i) = idle.pop() {
            if !i.sender.is_closed() && i.since.elapsed() < idle_timeout {
                return Some(Sender::H1(i.sender));
            }
        }
        None
    }

    /// Gives back an HTTP/1.1 connection whose exchange is complete.
    pub fn put(&self, sender: http1::SendRequest<Body>, max_idle: usize) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < max_idle
        {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    pub fn share_h2(&self, sender: &http2::SendRequest<Body>) {
        if let Ok(mut h2) = self.h2.lock() {
            *h2 = Some(sender.clone());
        }
    }
}

impl Connector {
    /// Connects to `resolved` when DNS gave one, else to the authority (resolved by the
    /// system, for a name).
    pub async fn connect(
        &self,
        authority: &Authority,
        resolved: Option<std::net::SocketAddr>,
    ) -> Result<Sender, UpstreamError> {
        let addr = authority.as_str();
        let fail = |reason: String| UpstreamError::Connect {
            target: addr.to_string(),
            reason,
        };
        let connecting = async {
            let tcp = match resolved {
                Some(a) => TcpStream::connect(a).await,
                None => TcpStream::connect(addr).await,
            }
            .map_err(|e| fail(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            match &self.tls {
                None => handshake(TokioIo::new(tcp), self.http2).await,
                Some((tls, name)) => {
                    let name = match name {
                        Some(n) => n.clone(),
                        None => ServerName::try_from(authority.host().trim_matches(['[', ']']))
                            .map_err(|e| fail(format!("not a TLS server name: {e}")))?
                            .to_owned(),
                    };
                    let stream = tls
                        .connect(name, tcp)
                        .await
                        .map_err(|e| fail(format!("TLS: {e}")))?;
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    handshake(TokioIo::new(stream), h2).await
                }
            }
            .map_err(|e| fail(e.to_string()))
        };
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::ConnectTimeout {
                target: addr.to_string(),
                timeout: self.connect_timeout,
            }),
        }
    }
}

async fn handshake<T>(io: T, h2: bool) -> hyper::Result<Sender>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    if h2 {
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
            }
        });
        Ok(Sender::H2(sender))
    } else {
        let (sender, conn) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(Sender::H1(sender))
    }
}
