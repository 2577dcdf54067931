//! Rate limiting: at most `limit` requests per `window_s` for each consumer (or client IP,
//! header value, or the whole route), with different limits per consumer tier and an optional
//! daily quota. Counts live in the gateway's shared store (`kv.incr`), so with `[store] backend =
//! "redis"` every gateway instance enforces one limit together.
//!
//! Answers carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (IETF draft) and the
//! `X-RateLimit-*` equivalents; a refusal is 429 with `Retry-After` and a problem body.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// The current fixed window's count plus the previous window's, weighted by how much of it
    /// the sliding window still covers: smooth, no burst at window edges.
    SlidingWindow,
    /// Plain counting per window aligned to the clock: exact, resets at each window's start.
    FixedWindow,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreDown {
    /// Count in this gateway instance only (logged and counted as a metric).
    Local,
    /// Let requests through uncounted.
    Allow,
    /// Refuse with 503.
    Deny,
}

#[derive(Deserialize, Clone, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The `consumer` an auth plugin put in the context; the client IP without one.
    Consumer,
    Ip,
    /// Everyone on the route together.
    Route,
    Header(String),
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    limit: u64,
    /// Requests per UTC day, on top of the window limit.
    quota_per_day: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    limit: u64,
    #[serde(default = "minute")]
    window_s: u64,
    quota_per_day: Option<u64>,
    #[serde(default = "by_consumer")]
    by: By,
    /// Limits by tier, the tier read from the context key `tier_key` (set by key-auth, jwt, ...).
    #[serde(default)]
    tiers: BTreeMap<String, Limit>,
    #[serde(default = "tier")]
    tier_key: String,
    #[serde(default = "sliding")]
    algorithm: Algorithm,
    #[serde(default = "local")]
    on_store_down: OnStoreDown,
}

fn minute() -> u64 {
    60
}
fn by_consumer() -> By {
    By::Consumer
}
fn tier() -> String {
    "tier".into()
}
fn sliding() -> Algorithm {
    Algorithm::SlidingWindow
}
fn local() -> OnStoreDown {
    OnStoreDown::Local
}

const DAY_MS: u64 = 86_400_000;
/// Context key carrying "limit,remaining,reset" from the request phase to the response phase.
const STATE: &str = "rate-limit.state";

/// What one check decided; kept with the request (`state_set`) for the response phase.
#[derive(Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Decision {
    allowed: bool,
    limit: u64,
    remaining: u64,
    /// Seconds until the window (or, for a quota, the day) resets.
    reset_s: u64,
    quota: bool,
}

/// The sliding-window estimate: the current count plus the previous window's count scaled by
/// the share of it still inside the window.
pub fn sliding_estimate(previous: u64, current: u64, window_ms: u64, elapsed_ms: u64) -> u64 {
    let remaining_share = window_ms.saturating_sub(elapsed_ms);
    current + previous.saturating_mul(remaining_share) / window_ms.max(1)
}

impl RateLimit {
    fn identity(&self, req: &Request) -> String {
        let who = match &self.by {
            By::Consumer => Identity::consumer_of(req)
                .map(|c| format!("c:{c}"))
                .unwrap_or_else(|| format!("ip:{}", req.client_ip())),
            By::Ip => format!("ip:{}", req.client_ip()),
            By::Route => "all".to_string(),
            By::Header(h) => format!("h:{}", req.header(h).unwrap_or_default()),
        };
        format!("{}:{who}", req.route_name())
    }

    fn limits(&self, req: &Request) -> Limit {
        req.context_get(&self.tier_key)
            .and_then(|t| self.tiers.get(&t).copied())
            .unwrap_or(Limit {
                limit: self.limit,
                quota_per_day: self.quota_per_day,
            })
    }

    /// Adds one to `key` (created with `ttl`). When the store is down: counts locally, or
    /// returns the action the policy says (let through, or refuse).
    fn count(&self, key: &str, ttl: Duration) -> Result<u64, Action> {
        match kv::incr(key, 1, Some(ttl)) {
            Ok(n) => Ok(u64::try_from(n).unwrap_or(0)),
            // Not an outage: the stored value is not a counter. Counting cannot work for this
            // key until it expires, and refusing would lock the consumer out for a window.
            Err(kv::Error::Invalid(e)) => {
                metrics::counter_add("counter_invalid", 1, &[]);
                log::error(&format!("counter {key} is not a number ({e}); not limited"));
                Err(Action::Continue)
            }
            Err(kv::Error::Unavailable(e)) => {
                metrics::counter_add("store_unavailable", 1, &[]);
                match self.on_store_down {
                    OnStoreDown::Local => {
                        log::warn(&format!("store unavailable ({e}); counting locally"));
                        Ok(u64::try_from(kv::local_incr(key, 1, Some(ttl))).unwrap_or(0))
                    }
                    OnStoreDown::Allow => Err(Action::Continue),
                    OnStoreDown::Deny => {
                        Err(Answer::problem(503, "rate limiting is unavailable").into())
                    }
                }
            }
        }
    }

    fn uncount(&self, key: &str) {
        if kv::incr(key, -1, None).is_err() {
            kv::local_incr(key, -1, None);
        }
    }

    fn check(&self, req: &Request) -> Result<Decision, Action> {
        let id = self.identity(req);
        let lim = self.limits(req);
        let now = clock::wall_ms();
        let window_ms = self.window_s * 1000;
        let slot = now / window_ms;
        let elapsed = now % window_ms;
        let reset_s = (window_ms - elapsed).div_ceil(1000);

        let mut quota_key = None;
        if let Some(quota) = lim.quota_per_day {
            let day = now / DAY_MS;
            let key = format!("{id}:d{day}");
            let used = self.count(&key, Duration::from_millis(DAY_MS))?;
            quota_key = Some(key.clone());
            if used > quota {
                self.uncount(&key);
                return Ok(Decision {
                    allowed: false,
                    limit: quota,
                    remaining: 0,
                    reset_s: (DAY_MS - now % DAY_MS).div_ceil(1000),
                    quota: true,
                });
            }
        }

        let key = format!("{id}:w{}:{slot}", self.window_s);
        let current = self.count(&key, Duration::from_millis(window_ms * 2))?;
        let used = match self.algorithm {
            Algorithm::FixedWindow => current,
            Algorithm::SlidingWindow => {
                let prev_key = format!("{id}:w{}:{}", self.window_s, slot.saturating_sub(1));
                let previous = kv::get(&prev_key)
                    .ok()
                    .flatten()
                    .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0);
                sliding_estimate(previous, current, window_ms, elapsed)
            }
        };
        let allowed = used <= lim.limit;
        if !allowed {
            // A refused request uses up neither the window nor the quota.
            self.uncount(&key);
            if let Some(q) = quota_key {
                self.uncount(&q);
            }
        }
        Ok(Decision {
            allowed,
            limit: lim.limit,
            remaining: lim.limit.saturating_sub(used),
            reset_s,
            quota: false,
        })
    }
}

fn headers(d: &Decision) -> [(&'static str, String); 6] {
    [
        ("ratelimit-limit", d.limit.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", d.reset_s.to_string()),
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", d.reset_s.to_string()),
    ]
}

#[plugin]
impl Plugin for RateLimit {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if c.window_s == 0 {
            return Err("window_s must be at least 1".into());
        }
        if c.limit == 0 || c.tiers.values().any(|t| t.limit == 0) {
            return Err("a limit of 0 refuses everything; use the deny plugin for that".into());
        }
        if let By::Header(h) = &c.by
            && h.is_empty()
        {
            return Err("`by = { header = ... }` needs a header name".into());
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let d = match self.check(req) {
            Ok(d) => d,
            Err(action) => return action,
        };
        if d.allowed {
            req.state_set(STATE, &d);
            return Action::Continue;
        }
        metrics::counter_add("refused", 1, &[("route", &req.route_name())]);
        let detail = if d.quota {
            format!("daily quota of {} requests used up", d.limit)
        } else {
            format!(
                "limit of {} requests per {} s reached",
                d.limit, self.window_s
            )
        };
        let mut a = Answer::problem(429, &detail).header("retry-after", &d.reset_s.to_string());
        for (k, v) in headers(&d) {
            a = a.header(k, &v);
        }
        a.into()
    }

    fn on_response_headers(&self, req: &Request, resp: &Response) -> Action {
        let Some(d) = req.state_get::<Decision>(STATE) else {
            return Action::Continue;
        };
        for (k, v) in headers(&d) {
            if let Err(e) = resp.set_header(k, &v) {
                return Answer::problem(500, &e).into();
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest, TestResponse, status};

    #[test]
    fn exact_at_the_boundary_and_resets_with_the_window() {
        testing::reset();
        testing::set_clock_ms(1_000_000_000);
        let h = TestHost::<RateLimit>::new(
            r#"{"limit": 3, "window_s": 10, "algorithm": "fixed_window", "by": "ip"}"#,
        )
        .unwrap();
        let run = || {
            let req = TestRequest::get("/");
            (status(&h.request_headers(&req)), req)
        };
        for left in [2, 1, 0] {
            let (s, req) = run();
            assert_eq!(s, 200);
            let resp = TestResponse::new(200);
            h.response_headers(&req, &resp);
            assert_eq!(
                resp.view().header("ratelimit-remaining"),
                Some(left.to_string())
            );
            assert_eq!(
                resp.view().header("x-ratelimit-limit").as_deref(),
                Some("3")
            );
        }
        let req = TestRequest::get("/");
        match h.request_headers(&req) {
            Action::Respond(a) => {
                assert_eq!(a.status, 429);
                assert!(a.headers.contains(&("retry-after".into(), "10".into())));
                assert!(
                    a.headers
                        .contains(&("ratelimit-remaining".into(), "0".into()))
                );
            }
            other => panic!("expected 429, got {other:?}"),
        }
        testing::set_clock_ms(1_000_010_000);
        assert_eq!(run().0, 200, "a new window");
    }

    #[test]
    fn tiers_quotas_and_identities() {
        testing::reset();
        testing::set_clock_ms(5_000);
        let h = TestHost::<RateLimit>::new(
            r#"{"limit": 1, "window_s": 60, "algorithm": "fixed_window",
                "tiers": {"premium": {"limit": 3}, "metered": {"limit": 100, "quota_per_day": 2}}}"#,
        )
        .unwrap();
        let as_ = |who: &str, tier: &str| {
            status(
                &h.request_headers(
                    &TestRequest::get("/")
                        .context("consumer", who)
                        .context("tier", tier),
                ),
            )
        };
        assert_eq!([as_("a", "free"), as_("a", "free")], [200, 429]);
        assert_eq!(
            [
                as_("b", "premium"),
                as_("b", "premium"),
                as_("b", "premium"),
                as_("b", "premium")
            ],
            [200, 200, 200, 429]
        );
        assert_eq!(
            [
                as_("c", "metered"),
                as_("c", "metered"),
                as_("c", "metered")
            ],
            [200, 200, 429]
        );
        assert_eq!(as_("d", "free"), 200, "each consumer counts alone");
    }

    #[test]
    fn sliding_window_weights_the_previous_window() {
        assert_eq!(sliding_estimate(10, 2, 1000, 0), 12);
        assert_eq!(sliding_estimate(10, 2, 1000, 500), 7);
        assert_eq!(sliding_estimate(10, 2, 1000, 1000), 2);
    }

    #[test]
    fn store_down_follows_the_policy() {
        testing::reset();
        testing::set_kv_down(true);
        let local =
            TestHost::<RateLimit>::new(r#"{"limit": 1, "algorithm": "fixed_window"}"#).unwrap();
        assert_eq!(status(&local.request_headers(&TestRequest::get("/"))), 200);
        assert_eq!(
            status(&local.request_headers(&TestRequest::get("/"))),
            429,
            "counted locally"
        );
        let deny = TestHost::<RateLimit>::new(r#"{"limit": 1, "on_store_down": "deny"}"#).unwrap();
        assert_eq!(status(&deny.request_headers(&TestRequest::get("/"))), 503);
        let allow =
            TestHost::<RateLimit>::new(r#"{"limit": 1, "on_store_down": "allow"}"#).unwrap();
        assert_eq!(status(&allow.request_headers(&TestRequest::get("/"))), 200);
        assert_eq!(status(&allow.request_headers(&TestRequest::get("/"))), 200);
        assert!(TestHost::<RateLimit>::new(r#"{"limit": 0}"#).is_err());
    }

    #[test]
    fn a_counter_that_is_not_a_number_is_not_an_outage() {
        testing::reset();
        testing::set_clock_ms(1_000_000_000);
        // Slot 100000 of a 10 s window, route "test", every client counted together.
        kv::set("test:all:w10:100000", b"text", None).unwrap();
        let h = TestHost::<RateLimit>::new(
            r#"{"limit": 1, "window_s": 10, "algorithm": "fixed_window", "by": "route", "on_store_down": "deny"}"#,
        )
        .unwrap();
        for _ in 0..3 {
            assert_eq!(
                status(&h.request_headers(&TestRequest::get("/"))),
                200,
                "let through, not refused as if the store were down"
            );
        }
    }
}
