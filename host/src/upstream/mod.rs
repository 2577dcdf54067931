//! Upstreams: named groups of targets, each with its own connection pool, balancer and health.

mod balance;
pub mod breaker;
mod budget;
mod clock;
mod discovery;
mod dns;
mod health;
mod pool;
mod split;
mod target;
pub mod tls;

pub use balance::{Balancer, HashSource, NoKeys};
pub use discovery::init_etcd;
pub use dns::init as init_dns;
pub use split::{Mirror, Split};
pub use target::Lease;
pub use target::Target;

use std::error::Error as StdError;
use std::sync::{Arc, RwLock, Weak};

use arc_swap::ArcSwap;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use pool::{Connector, Sender};

use crate::config;
use crate::telemetry::metrics::counting_requests;
use crate::telemetry::targets::TryFailure;

pub type BoxError = Box<dyn StdError + Send + Sync>;
/// The body type sent upstream: the client's streamed body, or one a later phase made.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("could not connect to {target} within {timeout:?}")]
    ConnectTimeout { target: String, timeout: Duration },
    #[error("{target} did not answer within {timeout:?}")]
    Timeout { target: String, timeout: Duration },
    #[error("{target} failed: {}", chain(source))]
    Failed {
        target: String,
        source: hyper::Error,
    },
    #[error("{target} closed the connection before the request was sent")]
    Closed { target: String },
    #[error("invalid upstream request: {0}")]
    Request(String),
}

impl UpstreamError {
    /// What went wrong, in a word (a trace span's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Connect { .. } => "connect",
            UpstreamError::ConnectTimeout { .. } => "connect_timeout",
            UpstreamError::Timeout { .. } => "timeout",
            UpstreamError::Failed { .. } => "reset",
            UpstreamError::Closed { .. } => "closed",
            UpstreamError::Request(_) => "invalid_request",
        }
    }
}

/// A target as configured or discovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    pub authority: Authority,
    pub addr: Option<std::net::SocketAddr>,
    pub weight: u32,
}

/// The targets in rotation and the balancer over them, replaced whole when discovery changes
/// the set; a request holds the targets it picked, so a swap never drops one in flight.
#[derive(Debug)]
pub struct TargetSet {
    pub list: Vec<Arc<Target>>,
    balancer: Balancer,
}

pub struct Upstream {
    pub name: Arc<str>,
    targets: ArcSwap<TargetSet>,
    pub scheme: Scheme,
    connector: Connector,
    balance: config::Balance,
    /// Each target's breaker policy (`health`), for targets discovery adds.
    policy: breaker::Policy,
    /// The config this was built from, so a reload that leaves it unchanged keeps the pool.
    pub config: config::Upstream,
    /// When its TLS files were last changed: a reload after a certificate is renewed builds
    /// the upstream again even with the config unchanged.
    pub tls_stamp: Vec<Option<std::time::SystemTime>>,
    /// The upstream's own breaker (with a `breaker` table): open, it refuses every request.
    pub breaker: Option<breaker::Breaker>,
    /// With a `retry` table.
    pub budget: Option<budget::RetryBudget>,
    /// Where requests go while this one is unavailable (`breaker.fallback_upstream`); weak, as
    /// two upstreams may name each other, and set once all of a generation's upstreams exist.
    fallback_upstream: RwLock<Weak<Upstream>>,
}

/// How a try at a target ended, for its breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failed(config::FailOn),
    /// Not the target's doing (the client's body failed, a request we could not build).
    Neither,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("targets", &self.targets.load().list)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds an upstream and, if it has active health checks, starts them (they stop when the
    /// upstream is dropped).
    pub fn new(
        name: &str,
        cfg: &config::Upstream,
        tls_files: &tls::Files,
    ) -> Result<Arc<Self>, tls::TlsError> {
        let h = &cfg.health;
        let policy = breaker::Policy {
            failures: h.max_fails,
            ratio: None,
            open_for: h.fail_timeout,
            probes: h.probes,
        };
        let balance = cfg
            .balance
            .as_ref()
            .map(|b| *b.get_ref())
            .unwrap_or_default();
        let addrs: Vec<TargetSpec> = cfg
            .targets
            .iter()
            .filter_map(|t| {
                let t = t.get_ref();
                t.address.as_str().parse().ok().map(|authority| TargetSpec {
                    authority,
                    addr: None,
                    weight: t.weight,
                })
            })
            .collect();

        let tls = match &cfg.tls {
            Some(t) => {
                let mut client = tls::client_config(tls_files)?;
                client.alpn_protocols = if cfg.http2 {
                    vec![b"h2".to_vec()]
                } else {
                    vec![b"http/1.1".to_vec()]
                };
                let name = t
                    .server_name
                    .as_ref()
                    .and_then(|n| rustls::pki_types::ServerName::try_from(n.clone()).ok());
                Some((tokio_rustls::TlsConnector::from(Arc::new(client)), name))
            }
            None => None,
        };
        let scheme = if tls.is_some() {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let connector = Connector {
            tls,
            http2: cfg.http2,
            connect_timeout: cfg.connect_timeout,
        };

        let up = Arc::new(Upstream {
            name: name.into(),
            targets: ArcSwap::from_pointee(TargetSet {
                list: Vec::new(),
                balancer: Balancer::new(balance, cfg.hash_on.clone(), &[]),
            }),
            scheme,
            connector,
            balance,
            policy,
            config: cfg.clone(),
            breaker: cfg.breaker.as_ref().map(|b| {
                let b = b.get_ref();
                breaker::Breaker::new(breaker::Policy {
                    failures: b.failures,
                    ratio: b.failure_ratio.map(|share| breaker::Ratio {
                        share,
                        window: b.window,
                        min_requests: b.min_requests,
                    }),
                    open_for: b.open_for,
                    probes: b.probes,
                })
            }),
            budget: cfg
                .retry
                .as_ref()
                .map(|r| budget::RetryBudget::new(r.get_ref().budget, r.get_ref().budget_reserve)),
            fallback_upstream: RwLock::new(Weak::new()),
            tls_stamp: tls_files.stamp(),
        });
        up.set_targets(&addrs);
        if discovery::wanted(cfg) {
            discovery::spawn(Arc::downgrade(&up));
        }
        if let Some(check) = &cfg.health.check {
            health::spawn(Arc::downgrade(&up), check.clone());
        }
        Ok(up)
    }

    /// The targets now (for a cold path: a snapshot that stays valid across awaits).
    pub fn targets(&self) -> Arc<TargetSet> {
        self.targets.load_full()
    }

    pub fn target_count(&self) -> usize {
        self.targets.load().list.len()
    }

    /// Replaces the set of targets (discovery found others): a target that stays keeps its
    /// pool, breaker and load; one that goes finishes the requests it has.
    pub fn set_targets(&self, addrs: &[TargetSpec]) {
        let old = self.targets.load();
        let list: Vec<Arc<Target>> = addrs
            .iter()
            .map(|spec| {
                old.list
                    .iter()
                    .find(|t| {
                        t.authority == spec.authority
                            && t.addr == spec.addr
                            && t.weight == spec.weight
                    })
                    .cloned()
                    .unwrap_or_else(|| {
                        let t = Target::new(
                            spec.authority.clone(),
                            spec.weight,
                            breaker::Breaker::new(self.policy.clone()),
                        );
                        Arc::new(match spec.addr {
                            Some(a) => t.at(a),
                            None => t,
                        })
                    })
            })
            .collect();
        let weights: Vec<u32> = list.iter().map(|t| t.weight).collect();
        let balancer = Balancer::new(self.balance, self.config.hash_on.clone(), &weights);
        self.targets.store(Arc::new(TargetSet { list, balancer }));
    }

    /// Points `breaker.fallback_upstream` at this generation's upstream of that name.
    pub fn set_fallback(&self, other: &Arc<Upstream>) {
        if let Ok(mut w) = self.fallback_upstream.write() {
            *w = Arc::downgrade(other);
        }
    }

    pub fn fallback_upstream(&self) -> Option<Arc<Upstream>> {
        self.fallback_upstream.read().ok()?.upgrade()
    }

    /// A target for a request, taking a probe slot where a breaker is half-open; `None` when the
    /// upstream's breaker is open or no target is in rotation.
    pub fn admit(&self, req: &dyn HashSource) -> Option<Arc<Target>> {
        if let Some(b) = &self.breaker
            && !b.admits()
        {
            return None;
        }
        let t = (0..self.target_count().max(1))
            .filter_map(|_| self.pick(req))
            .find(|t| t.breaker.begin())?;
        if let Some(b) = &self.breaker
            && !b.begin()
        {
            return None;
        }
        Some(t)
    }

    /// How long until a request could be let through, when the upstream refuses them: the
    /// upstream's open breaker, or the first target breaker to half-open, or the next active
    /// check when checks keep every target out.
    pub fn retry_after(&self) -> Option<Duration> {
        if let Some(ms) = self.breaker.as_ref().and_then(|b| b.retry_in()) {
            return Some(Duration::from_millis(ms));
        }
        let by_breaker = self
            .targets
            .load()
            .list
            .iter()
            .filter(|t| !t.check_failed())
            .filter_map(|t| t.breaker.retry_in())
            .min()
            .map(Duration::from_millis);
        by_breaker.or_else(|| self.config.health.check.as_ref().map(|c| c.interval))
    }

    pub fn pick(&self, req: &dyn HashSource) -> Option<Arc<Target>> {
        let set = self.targets.load();
        set.balancer
            .pick(&set.list, req)
            .map(|i| set.list[i].clone())
    }

    /// The request target for this upstream's protocol: origin-form (`/path?query`) for
    /// HTTP/1.1, where `Host` carries the authority; absolute for HTTP/2, whose `:authority` is
    /// the client's host when `preserve_host` is on. The connection is chosen by target either way.
    pub fn uri(
        &self,
        target: &Target,
        pq: PathAndQuery,
        host: &HeaderValue,
    ) -> Result<Uri, UpstreamError> {
        if !self.config.http2 {
            return Ok(Uri::from(pq));
        }
        let b = Uri::builder()
            .scheme(self.scheme.clone())
            .path_and_query(pq);
        let b = match host.to_str() {
            Ok(h) if self.config.preserve_host && !h.is_empty() => b.authority(h),
            _ => b.authority(target.authority.clone()),
        };
        b.build().map_err(|e| UpstreamError::Request(e.to_string()))
    }

    /// Sends a request (already addressed to `target`) and waits for the response head. The
    /// lease must live as long as the response body: it returns the connection to the pool.
    pub async fn send(
        &self,
        target: &Arc<Target>,
        req: Request<Body>,
    ) -> Result<(Response<Incoming>, Lease), UpstreamError> {
        let within = self.config.request_timeout;
        self.send_or_return(target, req, tokio::time::Instant::now() + within, within)
            .await
            .map_err(|(e, _)| e)
    }

    /// `send`, giving the request back with the error when no connection ever took it (the
    /// target refused or did not answer the connect, or closed a new connection before the
    /// send): the target never saw it, so it may go to another.
    /// The try's outcome feeds the target's and the upstream's breakers. The response head is
    /// due `until` (`within` of the try's start, for the error).
    pub async fn send_or_return(
        &self,
        target: &Arc<Target>,
        req: Request<Body>,
        until: tokio::time::Instant,
        within: Duration,
    ) -> Result<(Response<Incoming>, Lease), (UpstreamError, Option<Request<Body>>)> {
        let mut lease = Lease::new(target.clone(), self.config.pool.max_idle_per_target);
        let sent_at = std::time::Instant::now();
        let exchange = self.exchange(target, req, &mut lease);
        let result = match tokio::time::timeout_at(until, exchange).await {
            Ok(r) => r,
            Err(_) => Err((
                UpstreamError::Timeout {
                    target: target.authority.to_string(),
                    timeout: within,
                },
                None,
            )),
        };
        use config::FailOn;
        let outcome = match &result {
            Ok(resp) if resp.status().is_server_error() => Outcome::Failed(FailOn::ServerError),
            Ok(_) => Outcome::Success,
            Err((UpstreamError::Connect { .. } | UpstreamError::ConnectTimeout { .. }, _)) => {
                Outcome::Failed(FailOn::Connect)
            }
            Err((UpstreamError::Timeout { .. }, _)) => Outcome::Failed(FailOn::Timeout),
            Err((UpstreamError::Request(_), _)) => Outcome::Neither,
            Err((UpstreamError::Failed { source, .. }, _))
                if crate::error::ClientBodyError::find(source).is_some() =>
            {
                Outcome::Neither
            }
            Err(_) => Outcome::Failed(FailOn::Reset),
        };
        let counted = match (&result, outcome) {
            (Ok(resp), _) => Some(Ok(resp.status().as_u16())),
            (Err(_), Outcome::Failed(FailOn::Connect)) => Some(Err(TryFailure::Connect)),
            (Err(_), Outcome::Failed(FailOn::Timeout)) => Some(Err(TryFailure::Timeout)),
            (Err(_), Outcome::Failed(_)) => Some(Err(TryFailure::Reset)),
            // The client's body failed: not the target's doing.
            (Err(_), _) => None,
        };
        if let Some(c) = counted
            && counting_requests()
        {
            target.stats(&self.name).record(c, sent_at.elapsed());
        }
        self.record(target, outcome);
        result.map(|resp| (resp, lease))
    }

    /// Feeds a try's outcome to the breakers: the target's counts what `health.fail_on` lists,
    /// the upstream's (with a `breaker` table) every failure.
    fn record(&self, target: &Target, outcome: Outcome) {
        let kind = match outcome {
            Outcome::Neither => return,
            Outcome::Success => None,
            Outcome::Failed(kind) => Some(kind),
        };
        let target_failed = kind.is_some_and(|k| self.config.health.fail_on.contains(&k));
        if target_failed {
            if target.breaker.failure(|| self.may_eject()) == breaker::Change::Opened {
                tracing::warn!(upstream = %self.name, target = %target.authority, "target taken out of rotation: its breaker opened");
            }
        } else if target.breaker.success() == breaker::Change::Closed {
            tracing::info!(upstream = %self.name, target = %target.authority, "target back in rotation: its breaker closed");
        }
        let Some(b) = &self.breaker else { return };
        let change = if kind.is_some() {
            b.failure(|| true)
        } else {
            b.success()
        };
        match change {
            breaker::Change::Opened => {
                tracing::warn!(upstream = %self.name, "upstream breaker opened: requests get the fallback until it half-opens")
            }
            breaker::Change::Closed => {
                tracing::info!(upstream = %self.name, "upstream breaker closed")
            }
            breaker::Change::None => {}
        }
    }

    /// Whether one more target may be ejected: at most `max_ejected_percent` of them (and at
    /// least one), so a bad deploy cannot empty the upstream.
    fn may_eject(&self) -> bool {
        let set = self.targets.load();
        let n = set.list.len();
        let out = set.list.iter().filter(|t| !t.breaker.is_closed()).count();
        let cap = (n * self.config.health.max_ejected_percent as usize / 100).max(1);
        out < cap
    }

    /// The target for a try after `last` failed: another one in rotation, in the balancer's
    /// order first; else `last` itself when `same_ok` and it is still in rotation.
    pub fn admit_next(
        &self,
        req: &dyn HashSource,
        last: &Arc<Target>,
        same_ok: bool,
    ) -> Option<Arc<Target>> {
        // A hash balancer picks the same target every time: the plain list finds the others.
        let set = self.targets.load();
        let other = (0..set.list.len())
            .filter_map(|_| self.pick(req))
            .chain(set.list.iter().filter(|t| t.healthy()).cloned())
            .find(|t| !Arc::ptr_eq(t, last) && t.breaker.begin());
        other.or_else(|| (same_ok && last.healthy() && last.breaker.begin()).then(|| last.clone()))
    }

    async fn exchange(
        &self,
        target: &Arc<Target>,
        mut req: Request<Body>,
        lease: &mut Lease,
    ) -> Result<Response<Incoming>, (UpstreamError, Option<Request<Body>>)> {
        let failed = |source: hyper::Error| UpstreamError::Failed {
            target: target.authority.to_string(),
            source,
        };
        loop {
            // A pooled connection may have been closed by the target meanwhile; a request that
            // was not sent on it is tried again on the next one, or on a new connection.
            // Connecting is the cold path and its state (TCP, TLS, HTTP/2 handshake) is large:
            // boxed, it stays out of every request's future, which hyper allocates and moves.
            let (sender, pooled) = match target.pool.take(self.config.pool.idle_timeout) {
                Some(s) => (s, true),
                None => {
                    match Box::pin(self.connector.connect(&target.authority, target.addr)).await {
                        Ok(s) => (s, false),
                        Err(e) => return Err((e, Some(req))),
                    }
                }
            };
            let sent = match sender {
                Sender::H1(mut s) => {
                    if s.ready().await.is_err() {
                        if pooled {
                            continue;
                        }
                        return Err((
                            UpstreamError::Closed {
                                target: target.authority.to_string(),
                            },
                            Some(req),
                        ));
                    }
                    let r = s.try_send_request(req).await;
                    if r.is_ok() {
                        lease.hold(s);
                    }
                    r
                }
                Sender::H2(mut s) => {
                    if !pooled {
                        target.pool.share_h2(&s);
                    }
                    s.try_send_request(req).await
                }
            };
            match sent {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if pooled => req = unsent,
                    unsent => return Err((failed(e.into_error()), unsent)),
                },
            }
        }
    }

    /// A plain GET for health checks, bypassing balancing.
    async fn probe(&self, target: &Arc<Target>, path: &str, timeout: Duration) -> bool {
        let Ok(pq) = PathAndQuery::try_from(path) else {
            return false;
        };
        let Ok(host) = HeaderValue::from_str(target.authority.as_str()) else {
            return false;
        };
        let Ok(uri) = self.uri(target, pq, &host) else {
            return false;
        };
        let mut req = Request::new(Body::default());
        *req.uri_mut() = uri;
        req.headers_mut().insert(http::header::HOST, host);
        let mut lease = Lease::new(target.clone(), self.config.pool.max_idle_per_target);
        matches!(
            tokio::time::timeout(timeout, self.exchange(target, req, &mut lease)).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(a: &str, addr: Option<&str>) -> TargetSpec {
        TargetSpec {
            authority: a.parse().expect("authority"),
            addr: addr.map(|s| s.parse().expect("addr")),
            weight: 1,
        }
    }

    #[test]
    fn a_target_that_stays_keeps_its_state_and_a_new_one_starts_fresh() {
        let cfg: config::Upstream = toml::from_str("targets = [\"api.test:80\"]").expect("config");
        let up = Upstream::new("api", &cfg, &Default::default()).expect("upstream");
        let first = [spec("api.test:80", Some("10.0.0.1:80"))];
        up.set_targets(&first);
        let kept = up.targets().list[0].clone();
        kept.breaker.failure(|| true);
        up.set_targets(&[
            spec("api.test:80", Some("10.0.0.1:80")),
            spec("api.test:80", Some("10.0.0.2:80")),
        ]);
        let now = up.targets();
        assert_eq!(now.list.len(), 2);
        assert!(
            Arc::ptr_eq(&now.list[0], &kept),
            "the same target, pool and breaker"
        );
        assert_eq!(now.list[1].addr, Some("10.0.0.2:80".parse().expect("addr")));
        assert!(up.pick(&NoKeys).is_some());
    }
}
