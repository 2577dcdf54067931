//! Upstreams: named groups of targets, each with its own connection pool, balancer and health.

mod balance;
mod health;
mod target;
pub mod tls;

pub use balance::{Balancer, HashSource};
pub use target::{InFlight, Target};

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config;

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The body type sent upstream: the client's streamed body, or one a later phase made.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("{target} did not answer within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
    #[error("{target} failed: {reason}")]
    Failed { target: String, reason: String },
    #[error("invalid upstream request: {0}")]
    Request(String),
}

pub struct Upstream {
    pub name: Arc<str>,
    pub targets: Vec<Arc<Target>>,
    pub scheme: Scheme,
    pub preserve_host: bool,
    balancer: Balancer,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    request_timeout: Duration,
    max_fails: u32,
    fail_timeout: Duration,
    /// The config this was built from, so a reload that leaves it unchanged keeps the pool.
    pub config: config::Upstream,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds an upstream and, if it has active health checks, starts them (they stop when the
    /// upstream is dropped).
    pub fn new(
        name: &str,
        cfg: &config::Upstream,
        ca: Option<&std::path::Path>,
    ) -> Result<Arc<Self>, tls::TlsError> {
        let targets: Vec<Arc<Target>> = cfg
            .targets
            .iter()
            .filter_map(|t| {
                let t = t.get_ref();
                t.address
                    .as_str()
                    .parse()
                    .ok()
                    .map(|a| Arc::new(Target::new(a, t.weight)))
            })
            .collect();
        let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
        let balance = cfg
            .balance
            .as_ref()
            .map(|b| *b.get_ref())
            .unwrap_or_default();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let (scheme, connector) = match &cfg.tls {
            Some(t) => {
                let b = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls::client_config(ca)?)
                    .https_only();
                let b = match &t.server_name {
                    Some(n) => match rustls::pki_types::ServerName::try_from(n.clone()) {
                        Ok(sn) => b.with_server_name_resolver(FixedServerNameResolver::new(sn)),
                        Err(_) => b,
                    },
                    None => b,
                };
                let conn = if cfg.http2 {
                    b.enable_http2().wrap_connector(http)
                } else {
                    b.enable_http1().wrap_connector(http)
                };
                (Scheme::HTTPS, conn)
            }
            None => (
                Scheme::HTTP,
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls::client_config(None)?)
                    .https_or_http()
                    .enable_all_versions()
                    .wrap_connector(http),
            ),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(cfg.pool.idle_timeout)
            .pool_max_idle_per_host(cfg.pool.max_idle_per_target)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(cfg.http2)
            .set_host(false)
            .build(connector);

        let up = Arc::new(Upstream {
            name: name.into(),
            targets,
            scheme,
            preserve_host: cfg.preserve_host,
            balancer: Balancer::new(balance, cfg.hash_on.clone(), &weights),
            client,
            request_timeout: cfg.request_timeout,
            max_fails: cfg.health.max_fails,
            fail_timeout: cfg.health.fail_timeout,
            config: cfg.clone(),
        });
        if let Some(check) = &cfg.health.check {
            health::spawn(Arc::downgrade(&up), check.clone());
        }
        Ok(up)
    }

    pub fn pick(&self, req: &dyn HashSource) -> Option<&Arc<Target>> {
        self.balancer
            .pick(&self.targets, req)
            .map(|i| &self.targets[i])
    }

    /// The URI of `path_and_query` on `target`.
    pub fn uri(&self, target: &Target, pq: PathAndQuery) -> Result<Uri, UpstreamError> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(target.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| UpstreamError::Request(e.to_string()))
    }

    /// Sends a request (already addressed to `target`) and waits for the response head.
    pub async fn send(
        &self,
        target: &Target,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let name = || target.authority.to_string();
        match tokio::time::timeout(self.request_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Timeout {
                target: name(),
                timeout: self.request_timeout,
            }),
            Ok(Ok(resp)) => {
                target.record_success();
                Ok(resp)
            }
            Ok(Err(e)) if e.is_connect() => {
                target.record_failure(self.max_fails, self.fail_timeout);
                let reason = chain(&e);
                if is_timeout(&e) {
                    Err(UpstreamError::Timeout {
                        target: name(),
                        timeout: self.config.connect_timeout,
                    })
                } else {
                    Err(UpstreamError::Connect {
                        target: name(),
                        reason,
                    })
                }
            }
            Ok(Err(e)) => Err(UpstreamError::Failed {
                target: name(),
                reason: chain(&e),
            }),
        }
    }

    /// A plain GET for health checks, bypassing balancing.
    async fn probe(&self, target: &Target, path: &str, timeout: Duration) -> bool {
        let Ok(pq) = PathAndQuery::try_from(path) else {
            return false;
        };
        let Ok(uri) = self.uri(target, pq) else {
            return false;
        };
        let mut req = Request::new(Body::default());
        *req.uri_mut() = uri;
        if let Ok(host) = http::HeaderValue::from_str(target.authority.as_str()) {
            req.headers_mut().insert(http::header::HOST, host);
        }
        matches!(
            tokio::time::timeout(timeout, self.client.request(req)).await,
            Ok(Ok(r)) if r.status().is_success() || r.status().is_redirection()
        )
    }
}

fn chain(e: &dyn StdError) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn is_timeout(e: &(dyn StdError + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = c.source();
    }
    false
}
