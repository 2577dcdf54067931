//! Who may call the admin. With a token set, every call but the health probes must carry it.
//! Without one (loopback only, which `check` enforces), the `Host` must be a loopback name or
//! an IP address, so a web page cannot reach the admin through DNS rebinding. Calls that change
//! state also refuse a foreign `Origin`, so a web page cannot make a browser send them.

use http::{HeaderMap, Method, StatusCode, header};

use crate::config::Admin;

/// `Err` carries the status and the reason to answer with.
pub fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    admin: &Admin,
) -> Result<(), (StatusCode, &'static str)> {
    // The dashboard page holds no data (its calls carry the token), so a browser can open it.
    let probe = method == Method::GET && matches!(path, "/healthz" | "/readyz" | "/dashboard");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    match &admin.token {
        Some(token) if !probe => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same(given.as_bytes(), token.as_bytes()) {
                return Err((
                    StatusCode::UNAUTHORIZED,
                    "this admin call needs `Authorization: Bearer <[admin] token>`",
                ));
            }
        }
        Some(_) => {}
        None if !host.is_empty() && !loopback_host(host) => {
            return Err((
                StatusCode::FORBIDDEN,
                "the admin answers only to a loopback Host (127.0.0.1, [::1], localhost) unless [admin] token is set",
            ));
        }
        None => {}
    }
    if *method != Method::GET
        && *method != Method::HEAD
        && let Some(origin) = headers.get(header::ORIGIN)
    {
        let origin = origin.to_str().unwrap_or("");
        let origin_host = origin
            .split_once("://")
            .map_or("", |(_, rest)| rest.trim_end_matches('/'));
        if origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host) {
            return Err((
                StatusCode::FORBIDDEN,
                "cross-origin admin calls are refused; call the admin from a script or curl, not a web page",
            ));
        }
    }
    Ok(())
}

/// `127.0.0.1:9901`, `[::1]:9901`, `localhost:9901`, or any IP address (a rebinding attack
/// needs a name).
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
        }
        None => host.rsplit_once(':').map_or(host, |(n, _)| n),
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Compares without returning early, so the time taken does not tell how much of a guess was
/// right.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(token: Option<&str>) -> Admin {
        Admin {
            token: token.map(str::to_string),
            ..Admin::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn hosts_origins_and_tokens() {
        let open = admin(None);
        let local = headers(&[("host", "127.0.0.1:9901")]);
        assert!(check(&Method::POST, "/reload", &local, &open).is_ok());
        assert!(
            check(
                &Method::GET,
                "/config",
                &headers(&[("host", "localhost:9901")]),
                &open
            )
            .is_ok()
        );
        assert!(
            check(
                &Method::GET,
                "/config",
                &headers(&[("host", "[::1]:9901")]),
                &open
            )
            .is_ok()
        );
        let rebound = headers(&[("host", "evil.example:9901")]);
        assert_eq!(
            check(&Method::GET, "/config", &rebound, &open).map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
        let foreign = headers(&[
            ("host", "127.0.0.1:9901"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            check(&Method::POST, "/reload", &foreign, &open).map_err(|e| e.0),
            Err(StatusCode::FORBIDDEN)
        );
        let same_origin = headers(&[
            ("host", "127.0.0.1:9901"),
            ("origin", "http://127.0.0.1:9901"),
        ]);
        assert!(check(&Method::POST, "/reload", &same_origin, &open).is_ok());

        let locked = admin(Some("0123456789abcdef-token"));
        assert_eq!(
            check(&Method::POST, "/reload", &local, &locked).map_err(|e| e.0),
            Err(StatusCode::UNAUTHORIZED)
        );
        assert!(check(&Method::GET, "/readyz", &local, &locked).is_ok());
        let bearer = headers(&[
            ("host", "gw.internal:9901"),
            ("authorization", "Bearer 0123456789abcdef-token"),
        ]);
        assert!(check(&Method::POST, "/reload", &bearer, &locked).is_ok());
        let wrong = headers(&[("authorization", "Bearer 0123456789abcdef-tokeX")]);
        assert!(check(&Method::GET, "/config", &wrong, &locked).is_err());
    }
}
