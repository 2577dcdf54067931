//! Rate limiting and usage plans: at most `limit` requests per `window_s` for each consumer (or
//! client IP, tenant, header value, or the whole route), with limits per plan (the consumer's
//! tier, as key-auth or jwt set it) and optional quotas per UTC day and calendar month. Counts
//! live in the gateway's shared store (`kv.incr`), so with `[store] backend = "redis"` every
//! gateway instance enforces one limit together; with `scope = "global"` they are shared by
//! every route that counts the same way, so a plan's quota holds across routes.
//!
//! Answers carry `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, `RateLimit-Policy`
//! (IETF draft) and the `X-RateLimit-*` equivalents, plus `X-Quota-Limit`, `X-Quota-Remaining`,
//! `X-Quota-Reset` when a quota applies (a consumer reads what is left on every answer); a
//! refusal is 429 with `Retry-After` and a problem body naming the plan.

use std::collections::BTreeMap;
use std::time::Duration;

use wasmgate_plugin_sdk::prelude::*;
use wasmgate_plugin_sdk::time::{DAY_MS, civil, days_from_civil};

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// The current fixed window's count plus the previous window's, weighted by how much of it
    /// the sliding window still covers: smooth, no burst at window edges.
    SlidingWindow,
    /// Plain counting per window aligned to the clock: exact, resets at each window's start.
    FixedWindow,
    /// The generic cell rate algorithm, a token bucket: `limit` per `window_s` on average,
    /// refilled continuously, up to `burst` at once. One stored time per caller, updated with
    /// `kv.compare-and-swap` so gateways sharing a store enforce one bucket.
    #[serde(alias = "token_bucket")]
    Gcra,
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
    /// The identity's `tenant` (set by the tenant plugin): one budget per tenant.
    Tenant,
    Header(String),
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Counters per route.
    #[default]
    Route,
    /// Counters shared by every route with `scope = "global"`: one budget per consumer (or
    /// whatever `by` names) across the routes.
    Global,
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    limit: u64,
    /// Requests a full bucket lets through at once (`algorithm = "gcra"`); `limit` by default.
    burst: Option<u64>,
    /// Requests per UTC day, on top of the window limit.
    quota_per_day: Option<u64>,
    /// Requests per calendar month (UTC).
    quota_per_month: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    limit: u64,
    #[serde(default = "minute")]
    window_s: u64,
    burst: Option<u64>,
    quota_per_day: Option<u64>,
    quota_per_month: Option<u64>,
    #[serde(default = "by_consumer")]
    by: By,
    #[serde(default)]
    scope: Scope,
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

/// Context key carrying "limit,remaining,reset" from the request phase to the response phase.
const STATE: &str = "rate-limit.state";

/// What one check decided; kept with the request (`state_set`) for the response phase.
#[derive(Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Decision {
    allowed: bool,
    limit: u64,
    remaining: u64,
    /// Seconds until the window (or, for a quota, its period) resets.
    reset_s: u64,
    /// The window's length, for `RateLimit-Policy`.
    window_s: u64,
    /// The quota that refused the request, or the tightest one that let it through.
    quota: Option<QuotaUse>,
    /// Refused by `quota`, not by the window.
    by_quota: bool,
    /// The consumer's plan (tier), when limits came from one.
    plan: Option<String>,
    /// The bucket's rate (per window) and size, with `algorithm = "gcra"`.
    burst: Option<(u64, u64)>,
}

/// What the window (or bucket) said about one request.
struct Window {
    allowed: bool,
    remaining: u64,
    /// Seconds until the window resets; for a bucket, until it is full again (allowed) or
    /// until it lets the next request through (refused).
    reset_s: u64,
}

/// Attempts at a bucket's compare-and-swap before a request counts as refused: each failure
/// means another request changed the bucket between the read and the write.
const CAS_TRIES: usize = 8;

#[derive(Debug, PartialEq, Eq, serde::Serialize, Deserialize, Clone)]
pub struct QuotaUse {
    /// "day" or "month".
    period: String,
    limit: u64,
    remaining: u64,
    reset_s: u64,
}

/// The calendar month of `now_ms`: its key part and the ms until the next one starts.
fn month_of(now_ms: u64) -> (String, u64) {
    let (year, month, _) = civil(now_ms / DAY_MS);
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let next = days_from_civil(ny, nm) * DAY_MS;
    (format!("m{year}-{month:02}"), next.saturating_sub(now_ms))
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
            By::Tenant => format!("t:{}", Identity::tenant_of(req).unwrap_or_default()),
            By::Header(h) => format!("h:{}", req.header(h).unwrap_or_default()),
        };
        match self.scope {
            Scope::Route => format!("{}:{who}", req.route_name()),
            Scope::Global => format!("global:{who}"),
        }
    }

    /// The limits for `req`, and the plan they come from.
    fn limits(&self, req: &Request) -> (Limit, Option<String>) {
        let plan = req.context_get(&self.tier_key);
        match plan.as_ref().and_then(|t| self.tiers.get(t).copied()) {
            Some(l) => (l, plan),
            None => (
                Limit {
                    limit: self.limit,
                    burst: self.burst,
                    quota_per_day: self.quota_per_day,
                    quota_per_month: self.quota_per_month,
                },
                None,
            ),
        }
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
        let (lim, plan) = self.limits(req);
        let now = clock::wall_ms();

        // Quotas first: a request over any of them is refused and counted in none.
        let (month, month_left_ms) = month_of(now);
        let periods = [
            (
                "day",
                lim.quota_per_day,
                format!("d{}", now / DAY_MS),
                DAY_MS - now % DAY_MS,
            ),
            ("month", lim.quota_per_month, month, month_left_ms),
        ];
        let mut counted: Vec<String> = Vec::new();
        let mut tightest: Option<QuotaUse> = None;
        for (period, quota, part, left_ms) in periods {
            let Some(quota) = quota else { continue };
            let key = format!("{id}:{part}");
            // A key lives a little longer than its period, so a clock step cannot reset it.
            let used = match self.count(&key, Duration::from_millis(left_ms + DAY_MS)) {
                Ok(n) => n,
                Err(action) => {
                    counted.iter().for_each(|k| self.uncount(k));
                    return Err(action);
                }
            };
            counted.push(key);
            let q = QuotaUse {
                period: period.into(),
                limit: quota,
                remaining: quota.saturating_sub(used),
                reset_s: left_ms.div_ceil(1000),
            };
            if used > quota {
                counted.iter().for_each(|k| self.uncount(k));
                return Ok(Decision {
                    allowed: false,
                    limit: quota,
                    remaining: 0,
                    reset_s: q.reset_s,
                    window_s: self.window_s,
                    quota: Some(q),
                    by_quota: true,
                    plan,
                    burst: None,
                });
            }
            if tightest.as_ref().is_none_or(|t| q.remaining < t.remaining) {
                tightest = Some(q);
            }
        }

        let w = match self.algorithm {
            Algorithm::Gcra => self.bucket(&id, &lim, now),
            _ => self.window(&id, &lim, now),
        };
        let w = match w {
            Ok(w) => w,
            Err(action) => {
                counted.iter().for_each(|k| self.uncount(k));
                return Err(action);
            }
        };
        if !w.allowed {
            // A refused request uses up neither the window nor the quotas.
            counted.iter().for_each(|k| self.uncount(k));
            if let Some(q) = tightest.as_mut() {
                q.remaining += 1;
            }
        }
        let burst = (self.algorithm == Algorithm::Gcra).then(|| lim.burst.unwrap_or(lim.limit));
        Ok(Decision {
            allowed: w.allowed,
            // A bucket's remaining counts requests it lets through at once: out of `burst`.
            limit: burst.unwrap_or(lim.limit),
            remaining: w.remaining,
            reset_s: w.reset_s,
            window_s: self.window_s,
            quota: tightest,
            by_quota: false,
            plan,
            burst: burst.map(|b| (lim.limit, b)),
        })
    }

    /// The sliding or fixed window: one counter per window (and a read of the previous one).
    fn window(&self, id: &str, lim: &Limit, now: u64) -> Result<Window, Action> {
        let window_ms = self.window_s * 1000;
        let slot = now / window_ms;
        let elapsed = now % window_ms;
        let key = format!("{id}:w{}:{slot}", self.window_s);
        let current = self.count(&key, Duration::from_millis(window_ms * 2))?;
        let used = match self.algorithm {
            Algorithm::SlidingWindow => {
                let prev_key = format!("{id}:w{}:{}", self.window_s, slot.saturating_sub(1));
                let previous = kv::get(&prev_key)
                    .ok()
                    .flatten()
                    .and_then(|v| String::from_utf8(v).ok()?.parse().ok())
                    .unwrap_or(0);
                sliding_estimate(previous, current, window_ms, elapsed)
            }
            _ => current,
        };
        let allowed = used <= lim.limit;
        if !allowed {
            self.uncount(&key);
        }
        Ok(Window {
            allowed,
            remaining: lim.limit.saturating_sub(used),
            reset_s: (window_ms - elapsed).div_ceil(1000),
        })
    }

    /// The token bucket (GCRA): the key holds the theoretical arrival time (TAT) in µs; a
    /// request is let through when moving the TAT one interval on stays within `burst`
    /// intervals of now. When the store is down, `local` counts in fixed windows per gateway.
    fn bucket(&self, id: &str, lim: &Limit, now_ms: u64) -> Result<Window, Action> {
        let key = format!("{id}:g{}", self.window_s);
        let burst = lim.burst.unwrap_or(lim.limit);
        let gcra = Gcra::new(self.window_s, lim.limit, burst);
        for attempt in 0..CAS_TRIES {
            // A retry reads the clock again: the time has moved on with the bucket.
            let now_ms = if attempt == 0 {
                now_ms
            } else {
                clock::wall_ms()
            };
            let now = now_ms.saturating_mul(1000);
            let held = match kv::get(&key) {
                Ok(v) => v,
                Err(e) => return self.bucket_store_down(e, id, lim, now_ms),
            };
            let tat = held
                .as_deref()
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            let Some(next) = gcra.admit(tat, now) else {
                return Ok(Window {
                    allowed: false,
                    remaining: 0,
                    reset_s: gcra.wait_us(tat.unwrap_or(now), now).div_ceil(1_000_000),
                });
            };
            // The key outlives the time the bucket needs to fill up again by a second.
            let ttl = Duration::from_micros(next - now) + Duration::from_secs(1);
            match kv::compare_and_swap(
                &key,
                held.as_deref(),
                next.to_string().as_bytes(),
                Some(ttl),
            ) {
                Ok(true) => {
                    return Ok(Window {
                        allowed: true,
                        remaining: gcra.remaining(next, now),
                        reset_s: (next - now).div_ceil(1_000_000),
                    });
                }
                Ok(false) => continue,
                Err(e) => return self.bucket_store_down(e, id, lim, now_ms),
            }
        }
        metrics::counter_add("bucket_contended", 1, &[]);
        Ok(Window {
            allowed: false,
            remaining: 0,
            reset_s: 1,
        })
    }

    fn bucket_store_down(
        &self,
        e: kv::Error,
        id: &str,
        lim: &Limit,
        now_ms: u64,
    ) -> Result<Window, Action> {
        let kv::Error::Unavailable(reason) = e else {
            metrics::counter_add("counter_invalid", 1, &[]);
            log::error(&format!("bucket {id} is unusable ({e:?}); not limited"));
            return Err(Action::Continue);
        };
        metrics::counter_add("store_unavailable", 1, &[]);
        match self.on_store_down {
            OnStoreDown::Local => {
                log::warn(&format!("store unavailable ({reason}); counting locally"));
                let window_ms = self.window_s * 1000;
                let key = format!("{id}:w{}:{}", self.window_s, now_ms / window_ms);
                let ttl = Some(Duration::from_millis(window_ms * 2));
                let used = u64::try_from(kv::local_incr(&key, 1, ttl)).unwrap_or(0);
                Ok(Window {
                    allowed: used <= lim.limit,
                    remaining: lim.limit.saturating_sub(used),
                    reset_s: (window_ms - now_ms % window_ms).div_ceil(1000),
                })
            }
            OnStoreDown::Allow => Err(Action::Continue),
            OnStoreDown::Deny => Err(Answer::problem(503, "rate limiting is unavailable").into()),
        }
    }
}

/// The arithmetic of the generic cell rate algorithm, in µs.
#[derive(Debug, Clone, Copy)]
pub struct Gcra {
    /// The time one request uses up: the window over the limit.
    interval: u64,
    /// How far ahead of now the TAT may run: `burst` intervals, plus the tolerance.
    capacity: u64,
}

/// How early a request may come: concurrent requests (and gateways) read their clocks a little
/// apart, and one that read it a millisecond before the bucket's last update must not find it
/// a millisecond short of a full interval. Under half an interval, so never a request more.
const SKEW_US: u64 = 100_000;

impl Gcra {
    pub fn new(window_s: u64, limit: u64, burst: u64) -> Gcra {
        let interval = (window_s.saturating_mul(1_000_000) / limit.max(1)).max(1);
        Gcra {
            interval,
            capacity: interval.saturating_mul(burst) + SKEW_US.min(interval / 2),
        }
    }

    /// The new TAT when a request at `now` is let through; `None` when it is refused.
    pub fn admit(&self, tat: Option<u64>, now: u64) -> Option<u64> {
        let next = tat.unwrap_or(now).max(now) + self.interval;
        (next - now <= self.capacity).then_some(next)
    }

    /// Requests the bucket still lets through at once after the TAT moved to `tat`.
    pub fn remaining(&self, tat: u64, now: u64) -> u64 {
        self.capacity.saturating_sub(tat.saturating_sub(now)) / self.interval
    }

    /// µs from `now` until a request would be let through.
    pub fn wait_us(&self, tat: u64, now: u64) -> u64 {
        (tat + self.interval)
            .saturating_sub(self.capacity)
            .saturating_sub(now)
    }
}

/// `RateLimit-Policy`: the window's limit, or the bucket's rate with its burst.
fn policy(d: &Decision) -> String {
    match d.burst {
        Some((rate, b)) => format!("{};w={};burst={b}", rate, d.window_s),
        None => format!("{};w={}", d.limit, d.window_s),
    }
}

fn headers(d: &Decision) -> Vec<(&'static str, String)> {
    let mut h = vec![
        ("ratelimit-limit", d.limit.to_string()),
        ("ratelimit-remaining", d.remaining.to_string()),
        ("ratelimit-reset", d.reset_s.to_string()),
        ("ratelimit-policy", policy(d)),
        ("x-ratelimit-limit", d.limit.to_string()),
        ("x-ratelimit-remaining", d.remaining.to_string()),
        ("x-ratelimit-reset", d.reset_s.to_string()),
    ];
    if let Some(q) = &d.quota {
        h.push(("x-quota-limit", q.limit.to_string()));
        h.push(("x-quota-remaining", q.remaining.to_string()));
        h.push(("x-quota-reset", q.reset_s.to_string()));
    }
    h
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
        let bursts = std::iter::once(c.burst).chain(c.tiers.values().map(|t| t.burst));
        if bursts.clone().any(|b| b == Some(0)) {
            return Err("`burst` must be at least 1".into());
        }
        if c.algorithm != Algorithm::Gcra && bursts.clone().any(|b| b.is_some()) {
            return Err("`burst` needs `algorithm = \"gcra\"` (a token bucket)".into());
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
            // Usage: what each consumer of each plan used, where it is known who called.
            if let Some(c) = Identity::consumer_of(req) {
                let plan = d.plan.as_deref().unwrap_or("default");
                metrics::counter_add("used", 1, &[("consumer", &c), ("plan", plan)]);
            }
            req.state_set(STATE, &d);
            return Action::Continue;
        }
        let plan = d.plan.as_deref().unwrap_or("default");
        metrics::counter_add(
            "refused",
            1,
            &[("route", &req.route_name()), ("plan", plan)],
        );
        let detail = match &d.quota {
            Some(q) if d.by_quota => format!(
                "the {} quota of {} requests of plan `{plan}` is used up",
                if q.period == "day" {
                    "daily"
                } else {
                    "monthly"
                },
                q.limit
            ),
            _ => match d.burst {
                Some((rate, burst)) => format!(
                    "rate of {rate} requests per {} s (burst {burst}) of plan `{plan}` reached",
                    self.window_s
                ),
                None => format!(
                    "limit of {} requests per {} s of plan `{plan}` reached",
                    d.limit, self.window_s
                ),
            },
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
    fn calendar_months() {
        // One ms before a new year: the month ends in one ms.
        assert_eq!(month_of(20_089 * DAY_MS - 1), ("m2024-12".into(), 1));
    }

    #[test]
    fn a_global_plan_quota_holds_across_routes_and_is_read_on_every_answer() {
        testing::reset();
        testing::set_clock_ms(20_089 * DAY_MS + 5_000);
        let h = TestHost::<RateLimit>::new(
            r#"{"limit": 100, "scope": "global",
                "tiers": {"free": {"limit": 100, "quota_per_month": 3}}}"#,
        )
        .unwrap();
        let on = |route: &str| {
            TestRequest::get("/")
                .route(route, &[])
                .context("consumer", "ann")
                .context("tier", "free")
        };
        let (a, b) = (on("orders"), on("profile"));
        assert_eq!(status(&h.request_headers(&a)), 200);
        let resp = TestResponse::new(200);
        h.response_headers(&a, &resp);
        let v = resp.view();
        assert_eq!(v.header("x-quota-remaining").as_deref(), Some("2"));
        assert_eq!(v.header("ratelimit-policy").as_deref(), Some("100;w=60"));
        assert_eq!(status(&h.request_headers(&b)), 200);
        assert_eq!(status(&h.request_headers(&on("orders"))), 200);
        let refused = h.request_headers(&on("profile"));
        assert_eq!(status(&refused), 429);
        let Action::Respond(a) = refused else {
            unreachable!()
        };
        let body = String::from_utf8_lossy(&a.body);
        assert!(
            body.contains("the monthly quota of 3 requests of plan `free` is used up"),
            "{body}"
        );
    }

    #[test]
    fn a_bucket_lets_a_burst_through_then_refills_at_the_rate() {
        testing::reset();
        testing::set_clock_ms(1_000_000_000);
        // 2 per second on average, 5 at once.
        let h = TestHost::<RateLimit>::new(
            r#"{"limit": 2, "window_s": 1, "burst": 5, "algorithm": "gcra", "by": "ip"}"#,
        )
        .unwrap();
        let run = || status(&h.request_headers(&TestRequest::get("/")));
        assert_eq!(
            [run(), run(), run(), run(), run(), run()],
            [200, 200, 200, 200, 200, 429]
        );
        let refused = h.request_headers(&TestRequest::get("/"));
        let Action::Respond(a) = refused else {
            panic!("expected 429, got {refused:?}")
        };
        assert!(a.headers.contains(&("retry-after".into(), "1".into())));
        assert!(
            a.headers
                .contains(&("ratelimit-policy".into(), "2;w=1;burst=5".into())),
            "{:?}",
            a.headers
        );
        assert!(String::from_utf8_lossy(&a.body).contains("rate of 2 requests per 1 s (burst 5)"));
        // One interval (500 ms) on, less the 100 ms allowed for clocks read apart, one more.
        testing::set_clock_ms(1_000_000_399);
        assert_eq!(run(), 429);
        testing::set_clock_ms(1_000_000_400);
        assert_eq!([run(), run()], [200, 429]);
        // After the bucket fills up again, a whole burst.
        testing::set_clock_ms(1_000_010_000);
        let req = TestRequest::get("/");
        assert_eq!(status(&h.request_headers(&req)), 200);
        let resp = TestResponse::new(200);
        h.response_headers(&req, &resp);
        let v = resp.view();
        assert_eq!(v.header("ratelimit-limit").as_deref(), Some("5"));
        assert_eq!(v.header("ratelimit-remaining").as_deref(), Some("4"));
        assert_eq!(v.header("ratelimit-reset").as_deref(), Some("1"));
        assert_eq!(
            [run(), run(), run(), run(), run()],
            [200, 200, 200, 200, 429]
        );
    }

    #[test]
    fn gcra_arithmetic() {
        let g = Gcra::new(60, 3, 2);
        assert_eq!(g.interval, 20_000_000);
        assert_eq!(g.admit(None, 0), Some(20_000_000));
        assert_eq!(g.admit(Some(20_000_000), 0), Some(40_000_000));
        assert_eq!(g.admit(Some(40_000_000), 0), None);
        // A request whose clock is a little behind the bucket's last update still gets in.
        assert_eq!(g.admit(Some(20_050_000), 0), Some(40_050_000));
        assert_eq!(g.admit(Some(40_000_000), 0), None);
        assert_eq!(g.wait_us(40_000_000, 0), 19_900_000);
        assert_eq!(g.remaining(20_000_000, 0), 1);
        assert_eq!(
            g.remaining(20_001_000, 0),
            1,
            "not one less for a clock a ms behind"
        );
        // A TAT in the past counts from now.
        assert_eq!(g.admit(Some(5), 1_000_000), Some(21_000_000));
    }

    #[test]
    fn burst_is_checked_at_load() {
        let e = |c: &str| TestHost::<RateLimit>::new(c).err().unwrap_or_default();
        assert!(e(r#"{"limit": 1, "burst": 2}"#).contains("needs `algorithm = \"gcra\"`"));
        assert!(e(r#"{"limit": 1, "burst": 0, "algorithm": "gcra"}"#).contains("at least 1"));
        assert!(TestHost::<RateLimit>::new(r#"{"limit": 1, "algorithm": "token_bucket"}"#).is_ok());
    }

    #[test]
    fn a_bucket_falls_back_to_local_windows_when_the_store_is_down() {
        testing::reset();
        testing::set_kv_down(true);
        let h =
            TestHost::<RateLimit>::new(r#"{"limit": 1, "burst": 3, "algorithm": "gcra"}"#).unwrap();
        let run = || status(&h.request_headers(&TestRequest::get("/")));
        assert_eq!([run(), run()], [200, 429]);
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
