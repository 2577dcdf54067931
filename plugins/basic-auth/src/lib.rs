//! HTTP Basic authentication. Passwords are stored as salted SHA-256 hashes,
//! `sha256:SALT:HEX` where HEX = sha256(SALT + password); a user may carry groups for the acl
//! plugin. 401 with `WWW-Authenticate: Basic realm="..."` when credentials are missing or wrong.
//! The `Authorization` header is removed before forwarding.

use base64::Engine;
use sha2::{Digest, Sha256};
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    username: String,
    /// `sha256:SALT:HEX`.
    password_hash: String,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    users: Vec<User>,
    #[serde(default = "realm")]
    realm: String,
}

fn realm() -> String {
    "wasmgate".into()
}

/// The stored form of `password` with `salt`.
pub fn hash_password(salt: &str, password: &str) -> String {
    let digest = Sha256::digest(format!("{salt}{password}").as_bytes());
    let hex = wasmgate_plugin_sdk::hex::encode(&digest);
    format!("sha256:{salt}:{hex}")
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl BasicAuth {
    fn unauthorized(&self, detail: &str) -> Action {
        let params = [("realm", self.realm.as_str()), ("charset", "UTF-8")];
        Answer::unauthorized("Basic", &params, detail).into()
    }

    fn check(&self, header: &str) -> Option<&User> {
        let encoded = header
            .strip_prefix("Basic ")
            .or_else(|| header.strip_prefix("basic "))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (name, password) = text.split_once(':')?;
        let user = self.users.iter().find(|u| u.username == name)?;
        let salt = user.password_hash.split(':').nth(1)?;
        same(
            hash_password(salt, password).as_bytes(),
            user.password_hash.as_bytes(),
        )
        .then_some(user)
    }
}

#[plugin]
impl Plugin for BasicAuth {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if c.users.is_empty() {
            return Err("`users` is empty: no request could pass".into());
        }
        for u in &c.users {
            let parts: Vec<&str> = u.password_hash.split(':').collect();
            let ok = parts.len() == 3
                && parts[0] == "sha256"
                && !parts[1].is_empty()
                && parts[2].len() == 64
                && parts[2].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(format!(
                    "user `{}`: password_hash must be sha256:SALT:HEX (HEX = sha256 of SALT followed by the password)",
                    u.username
                ));
            }
            if u.username.contains(':') {
                return Err(format!("user `{}`: a username cannot hold `:`", u.username));
            }
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let Some(header) = req.header("authorization") else {
            return self.unauthorized("credentials are required");
        };
        let Some(user) = self.check(&header) else {
            return self.unauthorized("the username or password is wrong");
        };
        Identity {
            groups: user.groups.clone(),
            ..Identity::consumer(&user.username)
        }
        .set_on(req);
        req.remove_header("authorization");
        Action::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest};

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn checks_salted_hashes() {
        let cfg = format!(
            r#"{{"users": [{{"username": "ann", "password_hash": "{}", "groups": ["ops"]}}]}}"#,
            hash_password("NaCl", "hunter2")
        );
        let h = TestHost::<BasicAuth>::new(&cfg).unwrap();
        let req = TestRequest::get("/").header("authorization", &basic("ann", "hunter2"));
        assert_eq!(h.request_headers(&req), Action::Continue);
        assert_eq!(req.view().context_get("consumer").as_deref(), Some("ann"));
        assert_eq!(req.view().header("authorization"), None);
        for bad in [
            basic("ann", "wrong"),
            basic("bob", "hunter2"),
            "Bearer x".to_string(),
        ] {
            match h.request_headers(&TestRequest::get("/").header("authorization", &bad)) {
                Action::Respond(a) => {
                    assert_eq!(a.status, 401);
                    assert!(a.headers.contains(&(
                        "www-authenticate".into(),
                        "Basic realm=\"wasmgate\", charset=\"UTF-8\"".into()
                    )));
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(
            TestHost::<BasicAuth>::new(
                r#"{"users": [{"username": "a", "password_hash": "hunter2"}]}"#
            )
            .is_err()
        );
    }
}
