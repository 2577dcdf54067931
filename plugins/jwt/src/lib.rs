//! JWT bearer tokens. The token comes from `Authorization: Bearer` (or a configured header,
//! cookie or query parameter); its signature is checked with the configured keys — an HMAC
//! secret, PEM public keys, a static JWKS, or a JWKS fetched from an upstream (cached, refetched
//! when a token names an unknown `kid`) — for the algorithms allowed; `exp`/`nbf` with leeway,
//! `iss`, `aud` and required claims are checked. `alg: none` and algorithm confusion (an HMAC
//! token checked with a public key) are refused: each algorithm is checked only with keys of its
//! own family.
//!
//! On success the subject becomes the request's `consumer` (and `scope`/`roles` the context's
//! `scopes`/`roles`) and selected claims go upstream as headers. A revoked `jti` (kept in the
//! store until the token's `exp`) is refused; a route with `logout = true` revokes the token it
//! is shown. Refusals are 401 with `WWW-Authenticate: Bearer error="invalid_token", ...`.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreDown {
    /// Refuse with 503: a revoked token must not pass because the store is down.
    Deny,
    /// Accept tokens without the revocation check.
    Allow,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Accepted algorithms, e.g. ["RS256", "ES256"]. Required: there is no default.
    algorithms: Vec<String>,
    /// HMAC secret (HS256/384/512).
    secret: Option<String>,
    /// PEM public keys (RSA, EC or Ed25519), tried in order.
    #[serde(default)]
    public_keys_pem: Vec<String>,
    /// A JWKS document (`{"keys": [...]}`) given inline.
    jwks: Option<Value>,
    /// A JWKS fetched through `http-client`: `http://UPSTREAM/path` (list UPSTREAM in the
    /// plugin's `http` setting).
    jwks_url: Option<String>,
    /// OpenID Connect discovery instead of `jwks_url`: the issuer's
    /// `/.well-known/openid-configuration` names its `jwks_uri`, both fetched through `upstream`.
    oidc: Option<Oidc>,
    #[serde(default = "five_minutes")]
    jwks_cache_s: u64,
    issuer: Option<Vec<String>>,
    audience: Option<Vec<String>>,
    #[serde(default = "thirty")]
    leeway_s: u64,
    /// Claims that must be present (besides `exp`, always required).
    #[serde(default)]
    required_claims: Vec<String>,
    /// Where the token is: `header` ("authorization", as `Bearer ...`), else `cookie`, else
    /// `query`.
    #[serde(default = "authorization")]
    header: String,
    cookie: Option<String>,
    query: Option<String>,
    /// Request header → claim to copy into it, e.g. { "x-user-id" = "sub" }.
    #[serde(default)]
    forward_claims: BTreeMap<String, String>,
    #[serde(default = "sub")]
    consumer_claim: String,
    /// Claim whose value becomes the context's `tier` (for rate-limit).
    tier_claim: Option<String>,
    /// Claim whose value becomes the context's `tenant` (for the tenant plugin).
    tenant_claim: Option<String>,
    /// This route revokes the presented (valid) token and answers 200.
    #[serde(default)]
    logout: bool,
    #[serde(default = "deny")]
    on_store_down: OnStoreDown,
}

fn five_minutes() -> u64 {
    300
}
fn thirty() -> u64 {
    30
}
fn authorization() -> String {
    "authorization".into()
}
fn sub() -> String {
    "sub".into()
}
fn deny() -> OnStoreDown {
    OnStoreDown::Deny
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Oidc {
    /// The issuer's identifier, e.g. "https://login.example.com/realms/shop"; tokens must carry it
    /// as `iss` (unless `issuer` lists others).
    issuer: String,
    /// The upstream that serves the issuer (listed in the plugin's `http`).
    upstream: String,
}

impl Oidc {
    /// `http://UPSTREAM` + the path of `url` (an https URL the provider publishes).
    fn via_upstream(&self, url: &str) -> Result<String, String> {
        let rest = url
            .split_once("://")
            .map(|(_, r)| r)
            .ok_or_else(|| format!("`{url}` is not an absolute URL"))?;
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        Ok(format!("http://{}{path}", self.upstream))
    }
}

pub struct Jwt {
    c: Config,
    /// The JWKS URL the discovery document named, once fetched.
    discovered: RefCell<Option<String>>,
    algorithms: Vec<Algorithm>,
    secret: Option<DecodingKey>,
    pems: Vec<DecodingKey>,
    /// Static JWKS, or the last fetched one with its fetch time (ms).
    jwks: RefCell<Option<(JwkSet, u64)>>,
}

/// Why a token was refused; the text goes into `error_description`.
fn invalid(description: &str) -> Action {
    let params = [
        ("error", "invalid_token"),
        ("error_description", description),
    ];
    Answer::unauthorized("Bearer", &params, description).into()
}

fn missing() -> Action {
    Answer::unauthorized(
        "Bearer",
        &[("realm", "wasmgate")],
        "a bearer token is required",
    )
    .into()
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    if s.eq_ignore_ascii_case("none") {
        return Err("algorithm `none` is never accepted".into());
    }
    s.parse::<Algorithm>()
        .map_err(|_| format!("unknown algorithm `{s}`"))
}

fn pem_key(pem: &str) -> Result<DecodingKey, String> {
    let b = pem.as_bytes();
    DecodingKey::from_rsa_pem(b)
        .or_else(|_| DecodingKey::from_ec_pem(b))
        .or_else(|_| DecodingKey::from_ed_pem(b))
        .map_err(|_| {
            "a `public_keys_pem` entry is not an RSA, EC or Ed25519 public key".to_string()
        })
}

fn claim_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(","),
        ),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

impl Jwt {
    fn token(&self, req: &Request) -> Option<String> {
        if let Some(h) = req.header(&self.c.header) {
            let t = if self.c.header == "authorization" {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))?
                    .trim()
                    .to_string()
            } else {
                h.trim().to_string()
            };
            return (!t.is_empty()).then_some(t);
        }
        if let Some(name) = &self.c.cookie
            && let Some(t) = req.cookie(name)
        {
            return Some(t);
        }
        self.c.query.as_ref().and_then(|q| req.query_param(q))
    }

    /// The JWKS, fetched again when older than the cache time or when `refresh` is asked (a
    /// token named a key we do not know: the issuer may have rotated its keys).
    fn jwks(&self, refresh: bool) -> Result<Option<JwkSet>, String> {
        let url = match (&self.c.jwks_url, &self.c.oidc) {
            (Some(u), _) => u.clone(),
            (None, Some(o)) => self.discover(o, refresh)?,
            (None, None) => return Ok(self.jwks.borrow().as_ref().map(|(s, _)| s.clone())),
        };
        let url = &url;
        let now = clock::wall_ms();
        let fresh = self.jwks.borrow().as_ref().is_some_and(|(_, at)| {
            let age = now.saturating_sub(*at);
            // A forced refresh still waits 5 s between fetches, so bad tokens cannot hammer the
            // key server.
            age < self.c.jwks_cache_s * 1000 && !(refresh && age > 5_000)
        });
        if !fresh {
            let resp = http::get(url).map_err(|e| format!("fetching the JWKS: {e}"))?;
            if resp.status != 200 {
                return Err(format!("fetching the JWKS: status {}", resp.status));
            }
            let set: JwkSet = serde_json::from_slice(&resp.body)
                .map_err(|e| format!("the JWKS at {url} is not valid: {e}"))?;
            *self.jwks.borrow_mut() = Some((set, now));
        }
        Ok(self.jwks.borrow().as_ref().map(|(s, _)| s.clone()))
    }

    /// The JWKS URL from the issuer's discovery document, fetched once (again on `refresh`: a
    /// provider that rotates keys may move them).
    fn discover(&self, o: &Oidc, refresh: bool) -> Result<String, String> {
        if !refresh && let Some(u) = self.discovered.borrow().as_ref() {
            return Ok(u.clone());
        }
        let doc_url = o.via_upstream(&format!(
            "{}/.well-known/openid-configuration",
            o.issuer.trim_end_matches('/')
        ))?;
        let resp =
            http::get(&doc_url).map_err(|e| format!("fetching the discovery document: {e}"))?;
        if resp.status != 200 {
            return Err(format!(
                "fetching the discovery document: status {}",
                resp.status
            ));
        }
        let doc: Value = serde_json::from_slice(&resp.body)
            .map_err(|e| format!("the discovery document is not JSON: {e}"))?;
        // OpenID Connect Discovery §4.3: the document must name the issuer it was asked for.
        if doc["issuer"].as_str() != Some(o.issuer.as_str()) {
            return Err(format!(
                "the discovery document names issuer {}, not {}",
                doc["issuer"], o.issuer
            ));
        }
        let jwks_uri = doc["jwks_uri"]
            .as_str()
            .ok_or("the discovery document has no jwks_uri")?;
        let url = o.via_upstream(jwks_uri)?;
        *self.discovered.borrow_mut() = Some(url.clone());
        Ok(url)
    }

    /// The keys that may check a token of `alg` with key id `kid`: only keys of the algorithm's
    /// own family, so an HMAC token is never checked against a public key.
    fn keys_for(&self, alg: Algorithm, kid: Option<&str>) -> Result<Vec<DecodingKey>, String> {
        if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
            return Ok(self.secret.iter().cloned().collect());
        }
        let mut keys = self.pems.clone();
        let from_set = |set: &JwkSet| -> Vec<DecodingKey> {
            set.keys
                .iter()
                .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
                .filter_map(|k| DecodingKey::from_jwk(k).ok())
                .collect()
        };
        let fetched = self.c.jwks_url.is_some() || self.c.oidc.is_some();
        if self.c.jwks.is_some() || fetched {
            let mut found = self.jwks(false)?.map(|s| from_set(&s)).unwrap_or_default();
            if found.is_empty() && kid.is_some() && fetched {
                found = self.jwks(true)?.map(|s| from_set(&s)).unwrap_or_default();
            }
            if found.is_empty() && kid.is_some() && self.pems.is_empty() {
                return Err(format!("unknown key id `{}`", kid.unwrap_or_default()));
            }
            keys.extend(found);
        }
        Ok(keys)
    }

    fn verify(&self, token: &str) -> Result<Value, String> {
        let header = decode_header(token).map_err(|_| "the token is malformed".to_string())?;
        if !self.algorithms.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let keys = self.keys_for(header.alg, header.kid.as_deref())?;
        if keys.is_empty() {
            return Err(format!("no key checks {:?} tokens", header.alg));
        }
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.leeway = self.c.leeway_s;
        v.validate_nbf = true;
        let mut required = vec!["exp".to_string()];
        required.extend(self.c.required_claims.iter().cloned());
        v.set_required_spec_claims(&required);
        if let Some(iss) = &self.c.issuer {
            v.set_issuer(iss);
        }
        match &self.c.audience {
            Some(aud) => v.set_audience(aud),
            None => v.validate_aud = false,
        }
        for key in &keys {
            match decode::<Value>(token, key, &v) {
                Ok(data) => {
                    let claims = data.claims;
                    for c in &self.c.required_claims {
                        if claims.get(c).is_none_or(Value::is_null) {
                            return Err(format!("claim `{c}` is required"));
                        }
                    }
                    return Ok(claims);
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    let claim_error = match e.kind() {
                        K::ExpiredSignature => Some("the token has expired".to_string()),
                        K::ImmatureSignature => Some("the token is not valid yet".to_string()),
                        K::InvalidIssuer => Some("the issuer is not accepted".to_string()),
                        K::InvalidAudience => Some("the audience is not accepted".to_string()),
                        K::MissingRequiredClaim(c) => Some(format!("claim `{c}` is required")),
                        K::Json(_) | K::Utf8(_) | K::Base64(_) => {
                            Some("the token is malformed".to_string())
                        }
                        // A signature or key mismatch: the next key may be the right one.
                        _ => None,
                    };
                    if let Some(why) = claim_error {
                        return Err(why);
                    }
                }
            }
        }
        Err("the signature is not valid".into())
    }

    /// `Err(action)` when the token is revoked or revocation cannot be checked.
    fn check_revoked(&self, claims: &Value) -> Result<(), Action> {
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Ok(());
        };
        match kv::get(&format!("revoked:{jti}")) {
            Ok(Some(_)) => Err(invalid("the token has been revoked")),
            Ok(None) => Ok(()),
            Err(e) => {
                log::warn(&format!("cannot check revocations: {e:?}"));
                match self.c.on_store_down {
                    OnStoreDown::Allow => Ok(()),
                    OnStoreDown::Deny => {
                        Err(Answer::problem(503, "token revocation cannot be checked now").into())
                    }
                }
            }
        }
    }

    fn revoke(&self, claims: &Value) -> Action {
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Answer::problem(400, "the token has no `jti`, so it cannot be revoked").into();
        };
        let exp_ms = claims.get("exp").and_then(Value::as_u64).unwrap_or(0) * 1000;
        // Kept until the token would have expired anyway (plus the leeway).
        let ttl = exp_ms.saturating_sub(clock::wall_ms()) + self.c.leeway_s * 1000 + 1000;
        match kv::set(
            &format!("revoked:{jti}"),
            b"1",
            Some(Duration::from_millis(ttl)),
        ) {
            Ok(()) => Answer::new(200)
                .header("content-type", "application/json")
                .body(serde_json::json!({ "revoked": jti }).to_string())
                .into(),
            Err(e) => Answer::problem(503, &format!("cannot revoke now: {e:?}")).into(),
        }
    }
}

#[plugin]
impl Plugin for Jwt {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.algorithms.is_empty() {
            return Err("list the accepted `algorithms`, e.g. [\"RS256\"]".into());
        }
        let algorithms = c
            .algorithms
            .iter()
            .map(|a| parse_alg(a))
            .collect::<Result<Vec<_>, _>>()?;
        let hmac = algorithms
            .iter()
            .any(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512));
        let public = algorithms.len() > usize::from(hmac) || !hmac;
        if hmac && c.secret.is_none() {
            return Err("an HS algorithm is accepted but no `secret` is set".into());
        }
        if c.secret.as_ref().is_some_and(|s| s.len() < 16) {
            return Err("`secret` is shorter than 16 bytes: too easy to guess".into());
        }
        if public
            && c.public_keys_pem.is_empty()
            && c.jwks.is_none()
            && c.jwks_url.is_none()
            && c.oidc.is_none()
        {
            return Err(
                "a public-key algorithm is accepted but no `public_keys_pem`, `jwks`, `jwks_url` or `oidc` is set"
                    .into(),
            );
        }
        if c.oidc.is_some() && c.jwks_url.is_some() {
            return Err("set `oidc` or `jwks_url`, not both: discovery finds the JWKS".into());
        }
        let mut c = c;
        if let Some(o) = &c.oidc {
            if !o.issuer.starts_with("https://") && !o.issuer.starts_with("http://") {
                return Err(format!("`oidc.issuer` must be a URL, not `{}`", o.issuer));
            }
            if c.issuer.is_none() {
                c.issuer = Some(vec![o.issuer.clone()]);
            }
        }
        let pems = c
            .public_keys_pem
            .iter()
            .map(|p| pem_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        let jwks = match &c.jwks {
            Some(v) => {
                let set: JwkSet = serde_json::from_value(v.clone())
                    .map_err(|e| format!("`jwks` is not a JWKS: {e}"))?;
                Some((set, 0))
            }
            None => None,
        };
        if let Some(u) = &c.jwks_url
            && !u.starts_with("http://")
        {
            return Err(format!(
                "`jwks_url` must be http://UPSTREAM/path, not `{u}`"
            ));
        }
        Ok(Jwt {
            secret: c
                .secret
                .as_ref()
                .map(|s| DecodingKey::from_secret(s.as_bytes())),
            pems,
            jwks: RefCell::new(jwks),
            discovered: RefCell::new(None),
            algorithms,
            c,
        })
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let Some(token) = self.token(req) else {
            return missing();
        };
        let claims = match self.verify(&token) {
            Ok(c) => c,
            Err(why) => return invalid(&why),
        };
        if let Err(action) = self.check_revoked(&claims) {
            return action;
        }
        if self.c.logout {
            return self.revoke(&claims);
        }
        let words = |claim: &str, sep: &[char]| {
            Identity::items(claims.get(claim).and_then(claim_text).as_deref(), sep)
        };
        Identity {
            consumer: claims.get(&self.c.consumer_claim).and_then(claim_text),
            tier: self
                .c
                .tier_claim
                .as_ref()
                .and_then(|c| claims.get(c))
                .and_then(claim_text),
            groups: Vec::new(),
            scopes: words("scope", &[' ', ',']),
            roles: words("roles", &[',']),
            tenant: self
                .c
                .tenant_claim
                .as_ref()
                .and_then(|c| claims.get(c))
                .and_then(claim_text),
        }
        .set_on(req);
        for (header, claim) in &self.c.forward_claims {
            match claims.get(claim).and_then(claim_text) {
                Some(v) => {
                    if let Err(e) = req.set_header(header, &v) {
                        return Answer::problem(500, &e).into();
                    }
                }
                // Never let a client-sent value stand in for a claim the token lacks.
                None => req.remove_header(header),
            }
        }
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest};

    #[test]
    fn discovered_urls_go_through_the_upstream() {
        let o = Oidc {
            issuer: "https://login.test/realms/shop".into(),
            upstream: "idp".into(),
        };
        assert_eq!(
            o.via_upstream("https://login.test/realms/shop/certs?x=1")
                .as_deref(),
            Ok("http://idp/realms/shop/certs?x=1")
        );
        assert_eq!(
            o.via_upstream("https://login.test").as_deref(),
            Ok("http://idp/")
        );
        assert!(o.via_upstream("/relative").is_err());
    }

    #[test]
    fn a_discovery_document_for_another_issuer_is_refused() {
        testing::reset();
        testing::mock_http("http://idp/.well-known/openid-configuration", |_| {
            Ok(wasmgate_plugin_sdk::http::Incoming {
                status: 200,
                headers: vec![],
                body: br#"{"issuer": "https://evil.test", "jwks_uri": "https://evil.test/k"}"#
                    .to_vec(),
            })
        });
        let h = TestHost::<Jwt>::new(
            r#"{"algorithms": ["RS256"], "oidc": {"issuer": "https://login.test", "upstream": "idp"}}"#,
        )
        .unwrap();
        let o = h.plugin().c.oidc.as_ref().unwrap();
        let err = h.plugin().discover(o, false).unwrap_err();
        assert!(err.contains("names issuer \"https://evil.test\""), "{err}");
    }

    const SECRET: &str = "a-secret-of-32-bytes-for-hs-256!";

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    fn hs(claims: Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn run(h: &TestHost<Jwt>, token: &str) -> (u16, TestRequest) {
        let req = TestRequest::get("/").header("authorization", &format!("Bearer {token}"));
        let s = match h.request_headers(&req) {
            Action::Continue => 200,
            Action::Respond(a) => a.status,
        };
        (s, req)
    }

    fn host(extra: &str) -> TestHost<Jwt> {
        TestHost::new(&format!(
            r#"{{"algorithms": ["HS256"], "secret": "{SECRET}", "issuer": ["me"], "audience": ["api"],
                "forward_claims": {{"x-user-id": "sub"}} {extra}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn accepts_good_tokens_and_refuses_bad_ones() {
        testing::reset();
        let h = host("");
        let good = json(now() + 60);
        let (s, req) = run(&h, &hs(good.clone()));
        assert_eq!(s, 200);
        assert_eq!(req.view().header("x-user-id").as_deref(), Some("alice"));
        assert_eq!(req.view().context_get("consumer").as_deref(), Some("alice"));
        assert_eq!(
            req.view().context_get("scopes").as_deref(),
            Some("orders:read")
        );

        let mut expired = good.clone();
        expired["exp"] = (now() - 120).into();
        assert_eq!(run(&h, &hs(expired)).0, 401);
        let mut early = good.clone();
        early["nbf"] = (now() + 120).into();
        assert_eq!(run(&h, &hs(early)).0, 401);
        let mut iss = good.clone();
        iss["iss"] = "other".into();
        assert_eq!(run(&h, &hs(iss)).0, 401);
        // Change a signature character in the middle: the last one of a base64url signature
        // also carries padding bits, so changing it may not change the signature at all.
        let token = hs(good.clone());
        let at = token.rfind('.').map_or(0, |dot| dot + 5);
        let mut tampered: Vec<char> = token.chars().collect();
        tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
        let tampered: String = tampered.into_iter().collect();
        assert_eq!(run(&h, &tampered).0, 401);
        assert_eq!(run(&h, "not.a.token").0, 401);
    }

    fn json(exp: u64) -> Value {
        serde_json::json!({"sub": "alice", "iss": "me", "aud": "api", "exp": exp, "scope": "orders:read", "jti": "t-1"})
    }

    #[test]
    fn logout_revokes_until_expiry() {
        testing::reset();
        testing::set_clock_ms(now() * 1000);
        let h = host("");
        let logout = host(r#", "logout": true"#);
        let token = hs(json(now() + 60));
        assert_eq!(run(&h, &token).0, 200);
        assert_eq!(run(&logout, &token).0, 200);
        assert_eq!(run(&h, &token).0, 401, "revoked");
        testing::set_kv_down(true);
        assert_eq!(run(&h, &token).0, 503, "cannot check: refused");
    }

    #[test]
    fn config_errors() {
        for bad in [
            r#"{"algorithms": []}"#,
            r#"{"algorithms": ["none"], "secret": "a-secret-of-32-bytes-for-hs-256!"}"#,
            r#"{"algorithms": ["HS256"]}"#,
            r#"{"algorithms": ["HS256"], "secret": "short"}"#,
            r#"{"algorithms": ["RS256"]}"#,
            r#"{"algorithms": ["RS256"], "public_keys_pem": ["nope"]}"#,
        ] {
            assert!(TestHost::<Jwt>::new(bad).is_err(), "{bad}");
        }
    }
}
