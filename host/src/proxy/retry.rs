//! The tries of one request at an upstream's targets.
//!
//! A request no target took (the connection was refused, timed out, or closed before the send)
//! goes to the next target at no cost: the failed one never saw it. With a `retry` table, a try
//! that reached a target and failed (a configured status, a reset before the response head, its
//! per-try timeout) is made again, to another target when there is one, if the method is
//! idempotent (or the route opts in), the body was kept whole, attempts are left, the deadline
//! has time, and the upstream's retry budget has a token.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use http::uri::PathAndQuery;
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use super::{RequestKeys, address, replay};
use crate::config;
use crate::error::ProxyError;
use crate::telemetry::traces::{self, RequestTrace, TRACEPARENT};
use crate::upstream::{Body, Lease, Target, Upstream, UpstreamError};

/// What a request's tries need to know besides the request.
pub(super) struct Tries<'a> {
    pub upstream: &'a Upstream,
    pub host: &'a HeaderValue,
    pub client: IpAddr,
    /// The route lets POST and PATCH be retried.
    pub non_idempotent: bool,
    /// A protocol upgrade: its body is a tunnel, never sent twice.
    pub upgrade: bool,
    /// The request's trace: each try sends its own `traceparent` and, sampled, is a span.
    pub trace: Option<&'a RequestTrace>,
}

/// The answer and how it was reached.
pub(super) struct Sent {
    pub response: Response<Incoming>,
    pub lease: Lease,
    pub target: Arc<Target>,
    /// Tries in all, those no target took included.
    pub attempts: u32,
}

/// Why a try is made again, as counted in `wasmgate_upstream_retries_total`.
#[derive(Clone, Copy)]
enum Reason {
    Unreachable,
    Status,
    Timeout,
    Reset,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Unreachable => "unreachable",
            Reason::Status => "status",
            Reason::Timeout => "timeout",
            Reason::Reset => "reset",
        }
    }
}

/// What a failed try's request may be resent with.
struct Resend<'a> {
    policy: &'a config::Retry,
    head: replay::Head,
    body: replay::Keeper,
}

pub(super) async fn run(
    t: Tries<'_>,
    first: Arc<Target>,
    req: Request<Body>,
) -> Result<Sent, (ProxyError, Arc<Target>, u32)> {
    let up = t.upstream;
    let cfg = &up.config;
    let policy = cfg.retry.as_ref().map(|r| r.get_ref());
    // One clock read per request: the first try's deadline and, with a retry policy, the
    // request's (`request_timeout` spread over its tries).
    let start = Instant::now();
    let deadline = policy.map(|_| start + cfg.request_timeout);
    let per_try = policy
        .and_then(|p| p.per_try_timeout)
        .unwrap_or(cfg.request_timeout)
        .min(cfg.request_timeout);
    if let Some(b) = &up.budget {
        b.deposit();
    }
    let may_resend = !t.upgrade && (idempotent(req.method()) || t.non_idempotent);
    let (mut req, resend) = match policy {
        Some(policy) if may_resend && policy.attempts > 1 => {
            let (parts, body) = req.into_parts();
            let head = replay::Head::of(&parts);
            let (body, keeper) = replay::keep(body, policy.max_body.bytes());
            (
                Request::from_parts(parts, body),
                Some(Resend {
                    policy,
                    head,
                    body: keeper,
                }),
            )
        }
        _ => (req, None),
    };

    let mut target = first;
    let mut attempts = 0u32;
    let mut sent_tries = 0u32;
    loop {
        attempts += 1;
        let (until, within) = match deadline {
            Some(d) if attempts > 1 => {
                let now = Instant::now();
                let until = (now + per_try).min(d);
                (until, until.saturating_duration_since(now))
            }
            _ => (start + per_try, per_try),
        };
        let span = t.trace.map(|trace| {
            let begun = trace.begin();
            let id = begun.as_ref().map_or(trace.span_id(), traces::Begun::id);
            req.headers_mut().insert(TRACEPARENT, trace.header(id));
            (
                trace,
                begun.map(|b| (b, req.method().clone(), req.uri().clone())),
            )
        });
        let result = up.send_or_return(&target, req, until, within).await;
        if let Some((trace, Some((begun, method, url)))) = span {
            trace.upstream_try(
                begun,
                traces::Try {
                    method: &method,
                    url: &url,
                    target: target.authority.as_str(),
                    upstream: &up.name,
                    attempt: attempts,
                    outcome: match &result {
                        Ok((r, _)) => Ok(r.status().as_u16()),
                        Err((e, _)) => Err(e.kind()),
                    },
                },
            );
        }
        // What the next try would be for, or the end.
        let reason = match result {
            Ok((response, lease)) => {
                sent_tries += 1;
                let status = response.status().as_u16();
                let retried = policy.is_some_and(|p| p.statuses.contains(&status));
                if !retried || !may_try_again(resend.as_ref(), sent_tries, deadline) {
                    return Ok(Sent {
                        response,
                        lease,
                        target,
                        attempts,
                    });
                }
                Err((Reason::Status, response, lease))
            }
            Err((e, Some(unsent))) => {
                // Not seen by the target: the next one, if it has not had its try yet.
                let tried_all = attempts as usize >= up.target_count();
                let next = (!tried_all)
                    .then(|| up.admit_next(&t.keys(unsent.headers()), &target, false))
                    .flatten();
                let Some(next) = next else {
                    return Err((ProxyError::from_upstream(e), target, attempts));
                };
                tracing::warn!(error = %e, next = %next.authority, attempt = attempts, "upstream target failed before the request was sent; trying the next");
                count(up, Reason::Unreachable);
                let (mut parts, body) = unsent.into_parts();
                let pq = path_of(&parts.uri);
                address(&mut parts, up, &next, pq, t.host)
                    .map_err(|e| (e, target.clone(), attempts))?;
                req = Request::from_parts(parts, body);
                target = next;
                continue;
            }
            Err((e, None)) => {
                sent_tries += 1;
                let reason = match &e {
                    UpstreamError::Timeout { .. } => Some(Reason::Timeout),
                    UpstreamError::Failed { source, .. }
                        if crate::error::ClientBodyError::find(source).is_none() =>
                    {
                        Some(Reason::Reset)
                    }
                    UpstreamError::Closed { .. } => Some(Reason::Reset),
                    _ => None,
                };
                match reason {
                    Some(r) if may_try_again(resend.as_ref(), sent_tries, deadline) => Ok((r, e)),
                    _ => return Err((ProxyError::from_upstream(e), target, attempts)),
                }
            }
        };

        // A sent try failed and may be made again: a target, a token and the body first.
        // `may_try_again` said yes, so there is a plan.
        let Some(again) = resend.as_ref() else {
            return finish(reason, target, attempts);
        };
        // In this order: a body that cannot be replayed costs no pick and no token.
        let Some(body) = again.body.replay() else {
            return finish(reason, target, attempts);
        };
        let Some(next) = up.admit_next(&t.keys(again.head.headers()), &target, true) else {
            return finish(reason, target, attempts);
        };
        if up.budget.as_ref().is_some_and(|b| !b.withdraw()) {
            return finish(reason, target, attempts);
        }
        let why = match &reason {
            Ok((r, _)) | Err((r, _, _)) => *r,
        };
        match &reason {
            Ok((_, e)) => {
                tracing::warn!(error = %e, next = %next.authority, attempt = attempts, "upstream try failed; retrying")
            }
            Err((_, resp, _)) => {
                tracing::warn!(status = resp.status().as_u16(), target = %target.authority, next = %next.authority, attempt = attempts, "upstream answered a retried status; retrying")
            }
        }
        drop(reason);
        count(up, why);
        let wait = backoff(again.policy.backoff, sent_tries);
        if !wait.is_zero() && deadline.is_some_and(|d| Instant::now() + wait < d) {
            tokio::time::sleep(wait).await;
        }
        let mut parts = again.head.parts();
        let pq = path_of(&parts.uri);
        address(&mut parts, up, &next, pq, t.host).map_err(|e| (e, next.clone(), attempts))?;
        req = Request::from_parts(parts, body);
        target = next;
    }
}

type Failed = Result<(Reason, UpstreamError), (Reason, Response<Incoming>, Lease)>;

/// The last try's result when no other is made: its response, or its error.
fn finish(
    reason: Failed,
    target: Arc<Target>,
    attempts: u32,
) -> Result<Sent, (ProxyError, Arc<Target>, u32)> {
    match reason {
        Ok((_, e)) => Err((ProxyError::from_upstream(e), target, attempts)),
        Err((_, response, lease)) => Ok(Sent {
            response,
            lease,
            target,
            attempts,
        }),
    }
}

fn may_try_again(resend: Option<&Resend<'_>>, sent_tries: u32, deadline: Option<Instant>) -> bool {
    resend.is_some_and(|r| sent_tries < r.policy.attempts)
        && deadline.is_some_and(|d| Instant::now() < d)
}

/// `base` doubled at each retry, with full jitter: a uniform wait up to it.
fn backoff(base: Duration, retry: u32) -> Duration {
    if base.is_zero() {
        return Duration::ZERO;
    }
    let ceiling = base.saturating_mul(1 << retry.saturating_sub(1).min(6));
    let r = RandomState::new().hash_one(Instant::now());
    ceiling.mul_f64((r % 1000) as f64 / 1000.0)
}

fn count(up: &Upstream, reason: Reason) {
    metrics::counter!(
        "wasmgate_upstream_retries_total",
        "upstream" => up.name.to_string(),
        "reason" => reason.label(),
    )
    .increment(1);
}

pub(super) fn path_of(uri: &http::Uri) -> PathAndQuery {
    uri.path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"))
}

/// Methods whose repeat has the effect of one request (RFC 9110 §9.2.2).
pub fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

impl Tries<'_> {
    fn keys<'h>(&self, headers: &'h http::HeaderMap) -> RequestKeys<'h> {
        RequestKeys {
            headers,
            client: self.client,
        }
    }
}
