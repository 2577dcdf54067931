//! The `jwt` plugin against tokens made by an independent tool: keys are generated and tokens
//! signed with the `openssl` command line, never with the library the plugin verifies with.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde_json::{Value, json};

use crate::harness::*;

const SECRET: &str = "a-secret-of-32-bytes-for-hs-256!";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write to openssl");
    let out = child.wait_with_output().expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Key pairs made by openssl: (private key file, public key PEM).
struct Keys {
    dir: PathBuf,
}

impl Keys {
    fn new() -> Keys {
        let dir = temp_dir("jwt-keys");
        for (name, args) in [
            (
                "rsa",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            ),
            (
                "rsa2",
                &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"][..],
            ),
            (
                "p256",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"][..],
            ),
            (
                "p384",
                &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"][..],
            ),
            ("ed", &["-algorithm", "ed25519"][..]),
        ] {
            let key = dir.join(format!("{name}.pem"));
            let mut a = vec!["genpkey"];
            a.extend_from_slice(args);
            a.extend_from_slice(&["-out", key.to_str().expect("path")]);
            openssl(&a, b"");
            let public = openssl(
                &["pkey", "-in", key.to_str().expect("path"), "-pubout"],
                b"",
            );
            std::fs::write(dir.join(format!("{name}.pub.pem")), public).expect("write");
        }
        Keys { dir }
    }

    fn private(&self, name: &str) -> String {
        self.dir
            .join(format!("{name}.pem"))
            .to_string_lossy()
            .into_owned()
    }

    fn public_pem(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.pub.pem"))).expect("public key")
    }

    /// The RSA key `name` as a JWK with key id `kid`.
    fn rsa_jwk(&self, name: &str, kid: &str) -> Value {
        let hex = String::from_utf8(openssl(
            &[
                "rsa",
                "-pubin",
                "-in",
                &self.dir.join(format!("{name}.pub.pem")).to_string_lossy(),
                "-modulus",
                "-noout",
            ],
            b"",
        ))
        .expect("text");
        let hex = hex.trim().trim_start_matches("Modulus=");
        let n: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        json!({ "kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64(&n), "e": "AQAB" })
    }

    /// A JWT with `header` fields (alg added) and `claims`, signed by openssl.
    fn sign(&self, alg: &str, key: &str, extra_header: Value, claims: &Value) -> String {
        let mut header = json!({ "alg": alg, "typ": "JWT" });
        if let (Some(h), Some(e)) = (header.as_object_mut(), extra_header.as_object()) {
            h.extend(e.clone());
        }
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = signature(alg, key, input.as_bytes(), &self.dir);
        format!("{input}.{}", b64(&sig))
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signature(alg: &str, key: &str, input: &[u8], dir: &Path) -> Vec<u8> {
    let bits = &alg[2..];
    let digest = format!("-sha{bits}");
    match &alg[..2] {
        "HS" => openssl(
            &[
                "dgst",
                &digest,
                "-mac",
                "HMAC",
                "-macopt",
                &format!("key:{key}"),
                "-binary",
            ],
            input,
        ),
        "RS" => openssl(&["dgst", &digest, "-sign", key, "-binary"], input),
        "PS" => openssl(
            &[
                "dgst",
                &digest,
                "-sign",
                key,
                "-binary",
                "-sigopt",
                "rsa_padding_mode:pss",
                "-sigopt",
                "rsa_pss_saltlen:digest",
            ],
            input,
        ),
        "ES" => {
            let der = openssl(&["dgst", &digest, "-sign", key, "-binary"], input);
            der_to_raw(&der, if bits == "256" { 32 } else { 48 })
        }
        _ => {
            // EdDSA signs the message itself, which pkeyutl reads from a file.
            let file = dir.join("input.bin");
            std::fs::write(&file, input).expect("write");
            openssl(
                &[
                    "pkeyutl",
                    "-sign",
                    "-inkey",
                    key,
                    "-rawin",
                    "-in",
                    &file.to_string_lossy(),
                ],
                b"",
            )
        }
    }
}

/// ECDSA signatures: openssl writes DER (SEQUENCE of two INTEGERs), JWS wants r || s.
fn der_to_raw(der: &[u8], size: usize) -> Vec<u8> {
    let mut i = 2;
    if der[1] & 0x80 != 0 {
        i += usize::from(der[1] & 0x7f);
    }
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02, "INTEGER");
        let len = usize::from(der[i + 1]);
        let int = &der[i + 2..i + 2 + len];
        let int = &int[int.len().saturating_sub(size)..];
        out.extend(std::iter::repeat_n(0, size - int.len()));
        out.extend_from_slice(int);
        i += 2 + len;
    }
    out
}

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iss": "https://issuer.test", "aud": "shop", "exp": now() + 300,
            "iat": now(), "scope": "orders:read orders:write", "jti": format!("jti-{sub}") })
}

fn toml_str(s: &str) -> String {
    format!("\"\"\"{s}\"\"\"")
}

async fn bearer(gw: &Gateway, path: &str, token: &str) -> Resp {
    get_with(
        &gw.url(path),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

fn assert_invalid(r: &Resp, description: &str) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate").unwrap_or(""),
        format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
    );
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.json()["detail"], description);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_verifies_every_algorithm_family_and_refuses_bad_tokens() {
    let keys = Keys::new();
    let a = Upstream::echo("a").await;
    let pems: Vec<String> = ["rsa", "p256", "p384", "ed"]
        .iter()
        .map(|k| toml_str(&keys.public_pem(k)))
        .collect();
    let config = format!(
        r#"{{ name = "jwt", config = {{ algorithms = ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
    secret = "{SECRET}", public_keys_pem = [{}], issuer = ["https://issuer.test"], audience = ["shop"],
    leeway_s = 5, forward_claims = {{ x-user-id = "sub", x-scopes = "scope" }} }} }}"#,
        pems.join(", ")
    );
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("jwt", "jwt", "")
            + &format!("[[routes]]\nname = \"api\"\nupstream = \"a\"\nplugins = [{config}]\n")),
    )
    .await;

    let c = claims("alice");
    for (alg, key) in [
        ("HS256", SECRET.to_string()),
        ("HS384", SECRET.to_string()),
        ("HS512", SECRET.to_string()),
        ("RS256", keys.private("rsa")),
        ("RS384", keys.private("rsa")),
        ("RS512", keys.private("rsa")),
        ("PS256", keys.private("rsa")),
        ("ES256", keys.private("p256")),
        ("ES384", keys.private("p384")),
        ("EdDSA", keys.private("ed")),
    ] {
        let r = bearer(&gw, "/", &keys.sign(alg, &key, json!({}), &c)).await;
        assert_eq!(r.status, 200, "{alg}: {}", r.text());
        assert_eq!(r.json()["headers"]["x-user-id"], "alice", "{alg}");
        assert_eq!(r.json()["headers"]["x-scopes"], "orders:read orders:write");
        assert!(
            r.json()["headers"].get("authorization").is_some(),
            "the token goes on"
        );
    }

    let rs = |c: &Value| keys.sign("RS256", &keys.private("rsa"), json!({}), c);
    let with = |k: &str, v: Value| {
        let mut c = claims("alice");
        c[k] = v;
        c
    };
    assert_invalid(
        &bearer(&gw, "/", &rs(&with("exp", json!(now() - 60)))).await,
        "the token has expired",
    );
    assert_invalid(
        &bearer(&gw, "/", &rs(&with("nbf", json!(now() + 60)))).await,
        "the token is not valid yet",
    );
    assert_eq!(
        bearer(&gw, "/", &rs(&with("exp", json!(now() - 2))))
            .await
            .status,
        200,
        "within the leeway"
    );
    assert_invalid(
        &bearer(&gw, "/", &rs(&with("iss", json!("https://evil.test")))).await,
        "the issuer is not accepted",
    );
    assert_invalid(
        &bearer(&gw, "/", &rs(&with("aud", json!("admin")))).await,
        "the audience is not accepted",
    );
    let mut tampered = rs(&claims("alice"));
    let dot = tampered.rfind('.').unwrap_or(0);
    tampered.replace_range(dot + 1..dot + 5, "AAAA");
    assert_invalid(
        &bearer(&gw, "/", &tampered).await,
        "the signature is not valid",
    );
    let other_key = keys.sign("RS256", &keys.private("rsa2"), json!({}), &claims("alice"));
    assert_invalid(
        &bearer(&gw, "/", &other_key).await,
        "the signature is not valid",
    );
    // Swapping the payload keeps a valid-looking token whose signature no longer matches.
    let good = rs(&claims("alice"));
    let forged = rs(&claims("mallory"));
    let parts: Vec<&str> = good.split('.').collect();
    let forged_payload = forged.split('.').nth(1).unwrap_or("");
    let spliced = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert_invalid(
        &bearer(&gw, "/", &spliced).await,
        "the signature is not valid",
    );

    // alg none: no signature at all.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("alice").to_string().as_bytes())
    );
    assert_invalid(&bearer(&gw, "/", &none).await, "the token is malformed");

    let r = get(&gw.url("/")).await.expect("get");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"wasmgate\"")
    );
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::Relaxed), 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_refuses_hs_rs_confusion() {
    let keys = Keys::new();
    let a = Upstream::echo("a").await;
    let public = keys.public_pem("rsa");
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("jwt", "jwt", "")
            + &format!(
                "[[routes]]\nname = \"rs-only\"\npath_prefix = \"/rs\"\nupstream = \"a\"\nplugins = [{{ name = \"jwt\", config = {{ algorithms = [\"RS256\"], public_keys_pem = [{}] }} }}]\n",
                toml_str(&public)
            )
            + &format!(
                "[[routes]]\nname = \"both\"\npath_prefix = \"/both\"\nupstream = \"a\"\nplugins = [{{ name = \"jwt\", config = {{ algorithms = [\"RS256\", \"HS256\"], secret = \"{SECRET}\", public_keys_pem = [{}] }} }}]\n",
                toml_str(&public)
            )),
    )
    .await;
    // The classic attack: an HS256 token whose HMAC key is the server's public key.
    // (Also: a static JWKS and a required claim, on a route of their own below.)
    let forged = keys.sign("HS256", &public, json!({}), &claims("mallory"));
    assert_invalid(
        &bearer(&gw, "/rs", &forged).await,
        "algorithm HS256 is not accepted",
    );
    assert_invalid(
        &bearer(&gw, "/both", &forged).await,
        "the signature is not valid",
    );
    let honest = keys.sign("RS256", &keys.private("rsa"), json!({}), &claims("alice"));
    assert_eq!(bearer(&gw, "/both", &honest).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_static_jwks_and_required_claims() {
    let keys = Keys::new();
    let a = Upstream::echo("a").await;
    let jwks = json!({ "keys": [keys.rsa_jwk("rsa", "static-1")] }).to_string();
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("jwt", "jwt", "")
            + &format!(
                "[[routes]]\nname = \"api\"\nupstream = \"a\"\nplugins = [{{ name = \"jwt\", config = {{ algorithms = [\"RS256\"], jwks = {jwks}, required_claims = [\"tenant\"] }} }}]\n",
                jwks = toml_value(&jwks)
            )),
    )
    .await;
    let mut c = claims("alice");
    c["tenant"] = json!("acme");
    let ok = keys.sign(
        "RS256",
        &keys.private("rsa"),
        json!({ "kid": "static-1" }),
        &c,
    );
    assert_eq!(bearer(&gw, "/", &ok).await.status, 200);
    let no_tenant = keys.sign(
        "RS256",
        &keys.private("rsa"),
        json!({ "kid": "static-1" }),
        &claims("alice"),
    );
    assert_invalid(
        &bearer(&gw, "/", &no_tenant).await,
        "claim `tenant` is required",
    );
    let unknown = keys.sign("RS256", &keys.private("rsa"), json!({ "kid": "other" }), &c);
    assert_invalid(&bearer(&gw, "/", &unknown).await, "unknown key id `other`");
}

/// A JSON document as a TOML inline value (TOML inline tables read JSON objects' shape).
fn toml_value(json_text: &str) -> String {
    let v: Value = serde_json::from_str(json_text).unwrap_or(Value::Null);
    fn conv(v: &Value) -> String {
        match v {
            Value::Object(m) => format!(
                "{{ {} }}",
                m.iter()
                    .map(|(k, v)| format!("\"{k}\" = {}", conv(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Array(a) => format!("[{}]", a.iter().map(conv).collect::<Vec<_>>().join(", ")),
            other => other.to_string(),
        }
    }
    conv(&v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_follows_jwks_rotation_and_refuses_unknown_kids() {
    let keys = Keys::new();
    let a = Upstream::echo("a").await;
    let jwks = Arc::new(Mutex::new(json!({ "keys": [keys.rsa_jwk("rsa", "k1")] })));
    let served = jwks.clone();
    let issuer = Upstream::serve("issuer", move |_req| {
        let body = served.lock().map(|j| j.to_string()).unwrap_or_default();
        async move { http::Response::new(full(body)) }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &upstream_block("issuer", &[&issuer], "")
            + &plugin_block("jwt", "jwt", "http = [\"issuer\"]")
            + "[[routes]]\nname = \"api\"\nupstream = \"a\"\nplugins = [{ name = \"jwt\", config = { algorithms = [\"RS256\"], jwks_url = \"http://issuer/.well-known/jwks.json\", forward_claims = { x-user-id = \"sub\" } } }]\n"),
    )
    .await;
    let k1 = keys.sign(
        "RS256",
        &keys.private("rsa"),
        json!({ "kid": "k1" }),
        &claims("alice"),
    );
    let r = bearer(&gw, "/", &k1).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-user-id"], "alice");

    let k9 = keys.sign(
        "RS256",
        &keys.private("rsa2"),
        json!({ "kid": "k9" }),
        &claims("alice"),
    );
    assert_invalid(&bearer(&gw, "/", &k9).await, "unknown key id `k9`");

    // The issuer rotates to a new key; tokens with its kid pass once the set is refetched.
    if let Ok(mut j) = jwks.lock() {
        *j = json!({ "keys": [keys.rsa_jwk("rsa2", "k2")] });
    }
    let k2 = keys.sign(
        "RS256",
        &keys.private("rsa2"),
        json!({ "kid": "k2" }),
        &claims("bob"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = bearer(&gw, "/", &k2).await;
        if r.status == 200 {
            assert_eq!(r.json()["headers"]["x-user-id"], "bob");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotation not picked up: {}",
            r.text()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(issuer.requests.load(std::sync::atomic::Ordering::Relaxed) >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_logout_revokes_the_token_until_it_expires() {
    let a = Upstream::echo("a").await;
    let cfg = |extra: &str| {
        format!(
            "{{ name = \"jwt\", config = {{ algorithms = [\"HS256\"], secret = \"{SECRET}\", cookie = \"session\"{extra} }} }}"
        )
    };
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &plugin_block("jwt", "jwt", "")
            + &format!("[[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nupstream = \"a\"\nplugins = [{}]\n", cfg(""))
            + &format!("[[routes]]\nname = \"logout\"\npath = \"/logout\"\nupstream = \"a\"\nplugins = [{}]\n", cfg(", logout = true"))),
    )
    .await;
    let keys = Keys {
        dir: temp_dir("jwt-hs"),
    };
    let token = keys.sign("HS256", SECRET, json!({}), &claims("alice"));
    assert_eq!(bearer(&gw, "/api/x", &token).await.status, 200);
    let r = get_with(
        &gw.url("/api/x"),
        &[("cookie", &format!("theme=dark; session={token}"))],
    )
    .await;
    assert_eq!(r.status, 200, "the token may come in a cookie");

    let r = bearer(&gw, "/logout", &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revoked"], "jti-alice");
    assert_invalid(
        &bearer(&gw, "/api/x", &token).await,
        "the token has been revoked",
    );
    let other = keys.sign("HS256", SECRET, json!({}), &claims("bob"));
    assert_eq!(
        bearer(&gw, "/api/x", &other).await.status,
        200,
        "other tokens still pass"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bad_configs_are_refused_at_load() {
    let a = Upstream::echo("a").await;
    for (config, expect) in [
        (
            r#"{ algorithms = ["none"], secret = "a-secret-of-32-bytes-for-hs-256!" }"#,
            "algorithm `none` is never accepted",
        ),
        (
            r#"{ algorithms = ["RS256"] }"#,
            "no `public_keys_pem`, `jwks`, `jwks_url` or `oidc` is set",
        ),
        (
            r#"{ algorithms = ["HS256"], secret = "short" }"#,
            "shorter than 16 bytes",
        ),
        (
            r#"{ algorithms = ["RS256"], public_keys_pem = ["not a key"] }"#,
            "is not an RSA, EC or Ed25519 public key",
        ),
    ] {
        let text = upstream_block("a", &[&a], "")
            + &plugin_block("jwt", "jwt", "")
            + &format!(
                "[[routes]]\nname = \"api\"\nupstream = \"a\"\nplugins = [{{ name = \"jwt\", config = {config} }}]\n"
            );
        let dir = temp_dir("jwt-check");
        let path = dir.join("gateway.toml");
        std::fs::write(&path, Gateway::config(&text)).expect("write");
        let (accepted, err) = check(&path);
        assert!(!accepted);
        assert!(
            err.contains("route `api` plugin `jwt`") && err.contains(expect),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_finds_the_keys_by_oidc_discovery() {
    const ISSUER: &str = "https://login.example.test/realms/shop";
    let keys = Keys::new();
    let a = Upstream::echo("a").await;
    let jwks = json!({ "keys": [keys.rsa_jwk("rsa", "k1")] });
    let idp = Upstream::serve("idp", move |req| {
        let body = match req.uri().path() {
            "/realms/shop/.well-known/openid-configuration" => json!({
                "issuer": ISSUER,
                "jwks_uri": format!("{ISSUER}/protocol/certs"),
            }),
            "/realms/shop/protocol/certs" => jwks.clone(),
            _ => json!({ "error": "not found" }),
        };
        async move { http::Response::new(full(body.to_string())) }
    })
    .await;
    let gw = Gateway::start(
        &(upstream_block("a", &[&a], "")
            + &upstream_block("idp", &[&idp], "")
            + &plugin_block("jwt", "jwt", "http = [\"idp\"]")
            + &format!("[[routes]]\nname = \"api\"\nupstream = \"a\"\nplugins = [{{ name = \"jwt\", config = {{ algorithms = [\"RS256\"], oidc = {{ issuer = \"{ISSUER}\", upstream = \"idp\" }}, forward_claims = {{ x-user-id = \"sub\" }} }} }}]\n")),
    )
    .await;
    let mut c = claims("alice");
    c["iss"] = json!(ISSUER);
    let token = keys.sign("RS256", &keys.private("rsa"), json!({ "kid": "k1" }), &c);
    let r = bearer(&gw, "/", &token).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["headers"]["x-user-id"], "alice");
    // The discovery document names the issuer: a token from another one is refused.
    let other = keys.sign(
        "RS256",
        &keys.private("rsa"),
        json!({ "kid": "k1" }),
        &claims("mallory"),
    );
    assert_invalid(
        &bearer(&gw, "/", &other).await,
        "the issuer is not accepted",
    );
}
