//! The config as `/config` shows it: everything, except values that look secret (by their key's
//! name), passwords inside URLs, and every value that came from `${env:...}` or `${file:...}`.

use serde_json::Value;

const HIDDEN: &str = "(redacted)";

/// Words that make a key's value secret: `secret`, `password_hash`, `api_key`, `token`, ...
const SECRET_WORDS: &[&str] = &[
    "secret",
    "secrets",
    "password",
    "passwd",
    "pwd",
    "token",
    "credential",
    "credentials",
    "private",
    "hash",
    "sha256",
    "apikey",
    "key",
];

pub fn redacted(c: &crate::config::Config, secrets: &[String]) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or_default();
    walk(&mut v, secrets);
    v
}

fn walk(v: &mut Value, secrets: &[String]) {
    match v {
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                if secret_key(k) && !item.is_null() {
                    *item = Value::String(HIDDEN.into());
                } else {
                    walk(item, secrets);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| walk(i, secrets)),
        Value::String(s) => {
            let mut out = hide_url_password(s);
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                if out.contains(secret.as_str()) {
                    out = out.replace(secret.as_str(), HIDDEN);
                }
            }
            *s = out;
        }
        _ => {}
    }
}

fn secret_key(key: &str) -> bool {
    key.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| SECRET_WORDS.contains(&w.to_ascii_lowercase().as_str()))
}

/// `redis://user:pw@host` → `redis://user:(redacted)@host`.
fn hide_url_password(s: &str) -> String {
    let Some((scheme, rest)) = s.split_once("://") else {
        return s.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return s.to_string();
    };
    let user = userinfo.split(':').next().unwrap_or("");
    format!("{scheme}://{user}:{HIDDEN}@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hides_secrets_and_shows_the_rest() {
        let mut v = json!({
            "store": { "url": "redis://app:hunter2@10.0.0.1:6379/0", "prefix": "wasmgate:" },
            "admin": { "token": "abc" },
            "routes": [{ "plugins": [{ "name": "jwt", "config": {
                "secret": "s", "issuer": ["me"], "header": "authorization",
                "users": [{ "username": "bob", "password_hash": "x" }],
                "keys": [{ "sha256": "y", "consumer": "alice" }],
                "query": "api_key", "note": "uses TOPSECRET inside"
            }}]}]
        });
        walk(&mut v, &["TOPSECRET".to_string()]);
        assert_eq!(v["store"]["url"], "redis://app:(redacted)@10.0.0.1:6379/0");
        assert_eq!(v["store"]["prefix"], "wasmgate:");
        assert_eq!(v["admin"]["token"], HIDDEN);
        let c = &v["routes"][0]["plugins"][0]["config"];
        assert_eq!(c["secret"], HIDDEN);
        assert_eq!(c["issuer"], json!(["me"]));
        assert_eq!(c["header"], "authorization");
        assert_eq!(c["users"][0]["username"], "bob");
        assert_eq!(c["users"][0]["password_hash"], HIDDEN);
        assert_eq!(c["keys"][0]["sha256"], HIDDEN);
        assert_eq!(c["keys"][0]["consumer"], "alice");
        assert_eq!(c["query"], "api_key");
        assert_eq!(c["note"], "uses (redacted) inside");
    }
}
