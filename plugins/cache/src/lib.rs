//! Response caching through the `kv` capability: in-process by default, shared by every gateway
//! with Redis. GET and HEAD responses are kept for `ttl_s`, or what the upstream's
//! `Cache-Control` says (`s-maxage`, `max-age`; `no-store`, `private`, `no-cache` keep nothing),
//! keyed by method, host, path, the query with its parameters sorted (some ignored), the
//! request's values of the headers the response `Vary`s on, and configured extras (a header such
//! as the locale, a context value such as the consumer). Hits answer with `Age`; every answer says
//! `X-Cache: HIT | MISS | STALE | BYPASS`. When the upstream fails or answers 5xx, an expired
//! entry still within `stale_if_error_s` is served instead. A route with `purge = true` takes
//! `POST ?prefix=/path` and makes every entry under that path prefix a miss.
//!
//! Bodies are kept as they came (encoded). The entry size cap is the plugin's `body_limit`: set
//! `over_limit = "pass"` on its `[plugins.*]` table so that bigger responses go on uncached.

use std::time::Duration;

use serde::Serialize;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_ttl")]
    ttl_s: u64,
    #[serde(default)]
    stale_if_error_s: u64,
    #[serde(default = "default_methods")]
    methods: Vec<String>,
    /// Path prefixes never cached (`/search`; a trailing `*` is allowed and means the same).
    #[serde(default)]
    bypass: Vec<String>,
    /// Query parameters left out of the key (`utm_source`, ...).
    #[serde(default)]
    ignore_query: Vec<String>,
    /// Request headers whose values are part of the key (`accept-language`, ...).
    #[serde(default)]
    key_headers: Vec<String>,
    /// Request context values that are part of the key (`consumer`, `tenant`, ...).
    #[serde(default)]
    key_context: Vec<String>,
    /// Cache requests that carry `Authorization` or cookies (off: they bypass).
    #[serde(default)]
    cache_authorized: bool,
    /// Keep responses that set cookies (off: they are never stored).
    #[serde(default)]
    store_set_cookie: bool,
    /// This route is the purge endpoint.
    #[serde(default)]
    purge: bool,
}

fn default_ttl() -> u64 {
    60
}
fn default_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into()]
}

pub struct Cache(Config);

/// What the request phase found, for the response phases (in the request context).
#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Found {
    Bypass,
    /// Nothing usable: store what comes back under this key.
    Miss(String),
    /// Expired but within stale-if-error: store what comes back, or serve this on an error.
    Stale(String),
}

const STATE: &str = "cache";
const PURGES: &str = "purges";
/// Purges older than this are forgotten (longer than any entry lives).
const PURGE_MEMORY_MS: u64 = 7 * 24 * 3600 * 1000;

/// A stored response.
#[derive(Serialize, Deserialize)]
struct Meta {
    status: u16,
    headers: Vec<(String, String)>,
    /// When it was stored, ms since the epoch.
    at: u64,
    /// Fresh for this long, then stale for `stale` more.
    fresh: u64,
    stale: u64,
    path: String,
    /// The request's values of the headers the response varies on.
    vary: Vec<(String, Option<String>)>,
}

/// An entry in the store: its meta as one JSON line, then the body's bytes.
fn encode(meta: &Meta, body: &[u8]) -> Vec<u8> {
    let mut out = serde_json::to_vec(meta).unwrap_or_default();
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

fn decode(bytes: &[u8]) -> Option<(Meta, &[u8])> {
    let nl = bytes.iter().position(|b| *b == b'\n')?;
    let meta = serde_json::from_slice(&bytes[..nl]).ok()?;
    Some((meta, &bytes[nl + 1..]))
}

/// Headers not kept with an entry: framing is the gateway's, and these describe one answer.
const NOT_STORED: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "x-cache",
    "age",
    "set-cookie",
];

/// How long the upstream lets a shared cache keep this response: `None` for "do not store",
/// `Some(None)` when it does not say.
fn freshness(cache_control: Option<&str>) -> Option<Option<u64>> {
    let Some(cc) = cache_control else {
        return Some(None);
    };
    let (mut max_age, mut s_maxage) = (None, None);
    for d in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        match d.split_once('=') {
            Some(("max-age", v)) => max_age = v.trim_matches('"').parse::<u64>().ok(),
            Some(("s-maxage", v)) => s_maxage = v.trim_matches('"').parse::<u64>().ok(),
            _ if d == "no-store" || d == "private" || d == "no-cache" => return None,
            _ => {}
        }
    }
    Some(s_maxage.or(max_age))
}

impl Cache {
    fn key(&self, req: &Request, method: &str, path: &str) -> String {
        let mut query: Vec<&str> = Vec::new();
        let q = req.query().unwrap_or_default();
        for pair in q.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split_once('=').map_or(pair, |(n, _)| n);
            if !self.0.ignore_query.iter().any(|i| i == name) {
                query.push(pair);
            }
        }
        query.sort_unstable();
        let mut key = format!(
            "e:{method} {}{path}?{}",
            req.authority().to_ascii_lowercase(),
            query.join("&")
        );
        for h in &self.0.key_headers {
            key.push_str(&format!("|{h}={}", req.header(h).unwrap_or_default()));
        }
        for c in &self.0.key_context {
            key.push_str(&format!("|{c}={}", req.context_get(c).unwrap_or_default()));
        }
        key
    }

    fn bypassed(&self, req: &Request, method: &str, path: &str) -> bool {
        if !self
            .0
            .methods
            .iter()
            .any(|m| m.eq_ignore_ascii_case(method))
        {
            return true;
        }
        if self
            .0
            .bypass
            .iter()
            .any(|b| path.starts_with(b.trim_end_matches('*')))
        {
            return true;
        }
        !self.0.cache_authorized
            && (req.header("authorization").is_some() || req.header("cookie").is_some())
    }

    /// The entry under `key`, unless it was purged since it was stored or varies otherwise.
    fn lookup(&self, req: &Request, key: &str) -> Result<Option<(Meta, Vec<u8>)>, kv::Error> {
        let Some(bytes) = kv::get(key)? else {
            return Ok(None);
        };
        let Some((meta, body)) = decode(&bytes) else {
            return Ok(None);
        };
        let varies = meta
            .vary
            .iter()
            .any(|(name, value)| req.header(name) != *value);
        if varies || purged(&meta)? {
            return Ok(None);
        }
        let body = body.to_vec();
        Ok(Some((meta, body)))
    }

    fn purge(&self, req: &Request) -> Action {
        if req.method() != "POST" {
            return Answer::problem(405, "purge with POST ?prefix=/path").into();
        }
        let Some(prefix) = req.query_param("prefix").filter(|p| p.starts_with('/')) else {
            return Answer::problem(400, "give the path prefix to purge: ?prefix=/path").into();
        };
        let now = clock::wall_ms();
        let mut list: Vec<(String, u64)> = match kv::get(PURGES) {
            Ok(v) => v
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            Err(e) => {
                return Answer::problem(503, &format!("the store is unavailable: {e}")).into();
            }
        };
        list.retain(|(p, at)| now.saturating_sub(*at) < PURGE_MEMORY_MS && *p != prefix);
        list.push((prefix.clone(), now));
        let bytes = serde_json::to_vec(&list).unwrap_or_default();
        if let Err(e) = kv::set(PURGES, &bytes, Some(Duration::from_millis(PURGE_MEMORY_MS))) {
            return Answer::problem(503, &format!("the store is unavailable: {e}")).into();
        }
        log::info(&format!("purged {prefix}"));
        Answer::new(200)
            .header("content-type", "application/json")
            .body(serde_json::json!({ "purged": prefix }).to_string())
            .into()
    }

    /// `meta`'s response as an answer.
    fn answer(meta: Meta, body: Vec<u8>, x_cache: &str) -> Action {
        let age = clock::wall_ms().saturating_sub(meta.at) / 1000;
        let mut a = Answer::new(meta.status).body(body);
        a.headers = meta.headers;
        a.header("age", &age.to_string())
            .header("x-cache", x_cache)
            .into()
    }
}

/// Whether a purge since `meta` was stored covers its path.
fn purged(meta: &Meta) -> Result<bool, kv::Error> {
    let Some(bytes) = kv::get(PURGES)? else {
        return Ok(false);
    };
    let list: Vec<(String, u64)> = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(list
        .iter()
        .any(|(prefix, at)| *at >= meta.at && meta.path.starts_with(prefix.as_str())))
}

#[plugin]
impl Plugin for Cache {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if let Some(b) = c.bypass.iter().find(|b| !b.starts_with('/')) {
            return Err(format!(
                "bypass `{b}` must be a path prefix starting with `/`"
            ));
        }
        Ok(Cache(c))
    }

    /// The body is kept as it came, encoded.
    fn phases(&self, written: Phases) -> Phases {
        written | Phases::RAW_BODY
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        if self.0.purge {
            return self.purge(req);
        }
        let (method, path) = (req.method(), req.path());
        let found = if self.bypassed(req, &method, &path) {
            Found::Bypass
        } else {
            let key = self.key(req, &method, &path);
            match self.lookup(req, &key) {
                Ok(Some((meta, body))) => {
                    let age = clock::wall_ms().saturating_sub(meta.at);
                    if age < meta.fresh {
                        return Self::answer(meta, body, "HIT");
                    }
                    Found::Stale(key)
                }
                Ok(None) => Found::Miss(key),
                Err(e) => {
                    log::warn(&format!("store unavailable, not caching: {e}"));
                    Found::Bypass
                }
            }
        };
        req.state_set(STATE, &found);
        Action::Continue
    }

    fn on_response_headers(&self, req: &Request, resp: &Response) -> Action {
        let found: Option<Found> = req.state_get(STATE);
        let x_cache = match &found {
            Some(Found::Stale(key)) if resp.status() >= 500 => {
                if let Ok(Some(bytes)) = kv::get(key)
                    && let Some((meta, body)) = decode(&bytes)
                    && clock::wall_ms().saturating_sub(meta.at) < meta.fresh + meta.stale
                {
                    log::warn(&format!(
                        "upstream answered {}: serving a stale entry",
                        resp.status()
                    ));
                    return Self::answer(meta, body.to_vec(), "STALE");
                }
                "MISS"
            }
            Some(Found::Miss(_) | Found::Stale(_)) => "MISS",
            Some(Found::Bypass) | None => "BYPASS",
        };
        resp.set_header("x-cache", x_cache).into()
    }

    fn on_response_body(&self, req: &Request, resp: &Response) -> Action {
        let Some(Found::Miss(key) | Found::Stale(key)) = req.state_get::<Found>(STATE) else {
            return Action::Continue;
        };
        if !matches!(resp.status(), 200 | 203 | 300 | 301 | 404 | 410) {
            return Action::Continue;
        }
        let Some(declared) = freshness(resp.header("cache-control").as_deref()) else {
            return Action::Continue;
        };
        if !self.0.store_set_cookie && resp.header("set-cookie").is_some() {
            return Action::Continue;
        }
        let vary_names: Vec<String> = resp
            .header_all("vary")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|n| n.trim().to_ascii_lowercase())
            .filter(|n| !n.is_empty())
            .collect();
        if vary_names.iter().any(|n| n == "*") {
            return Action::Continue;
        }
        let fresh = declared.unwrap_or(self.0.ttl_s) * 1000;
        if fresh == 0 {
            return Action::Continue;
        }
        let meta = Meta {
            status: resp.status(),
            headers: resp
                .header_names()
                .into_iter()
                .filter(|n| !NOT_STORED.contains(&n.as_str()))
                .flat_map(|n| resp.header_all(&n).into_iter().map(move |v| (n.clone(), v)))
                .collect(),
            at: clock::wall_ms(),
            fresh,
            stale: self.0.stale_if_error_s * 1000,
            path: req.path(),
            vary: vary_names
                .into_iter()
                .map(|n| {
                    let v = req.header(&n);
                    (n, v)
                })
                .collect(),
        };
        let body = resp.body().unwrap_or_default();
        let ttl = Duration::from_millis(meta.fresh + meta.stale);
        if let Err(e) = kv::set(&key, &encode(&meta, &body), Some(ttl)) {
            log::warn(&format!("store unavailable, not cached: {e}"));
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests;
