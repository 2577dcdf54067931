//! Header rules of a proxy (RFC 9110 §7.6): hop-by-hop headers stop here, forwarding headers are
//! added, and an upgrade keeps the two headers it needs.

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

// `Trailer` is not among them: it announces end-to-end trailer fields (RFC 9110 §6.6.2).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
];

/// Whether the request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Drops hop-by-hop headers, including those the `Connection` header names. With `upgrade`, the
/// `Upgrade` header and `Connection: upgrade` survive so the next hop can switch too.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let upgrade_value = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    // `TE: trailers` is how gRPC says it understands trailers: it must reach the upstream.
    let te_trailers = headers
        .get(header::TE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        });
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    if let Some(v) = upgrade_value {
        headers.insert(header::UPGRADE, v);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Adds `X-Forwarded-For` (appended), `X-Forwarded-Proto` and `X-Forwarded-Host` (set).
pub fn add_forwarded(headers: &mut HeaderMap, conn: &super::ConnInfo, host: &HeaderValue) {
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    static XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    static XRI: HeaderName = HeaderName::from_static("x-real-ip");
    // Every earlier hop, however many lines the client split them over, then the one that
    // connected here.
    let mut chain = String::new();
    for prior in headers.get_all(&XFF).iter().filter_map(|v| v.to_str().ok()) {
        chain.push_str(prior);
        chain.push_str(", ");
    }
    chain.push_str(&conn.peer.to_string());
    let xff = HeaderValue::try_from(chain);
    if let Ok(v) = xff {
        headers.insert(&XFF, v);
    }
    // The client as the gateway settled it (trusted proxies resolved): never the client's claim.
    if let Ok(v) = HeaderValue::try_from(conn.client.ip().to_string()) {
        headers.insert(&XRI, v);
    }
    headers.insert(
        &XFP,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if !host.is_empty() {
        headers.insert(&XFH, host.clone());
    }
}

/// Appends this hop to `Via`.
pub fn add_via(headers: &mut HeaderMap, version: Version) {
    let hop = match version {
        Version::HTTP_10 => "1.0 wasmgate",
        Version::HTTP_2 => "2 wasmgate",
        Version::HTTP_3 => "3 wasmgate",
        _ => "1.1 wasmgate",
    };
    headers.append(header::VIA, HeaderValue::from_static(hop));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn strips_named_and_standard_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("gzip"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn keeps_te_trailers_and_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h[header::TE], "trailers");
        assert_eq!(h[header::UPGRADE], "websocket");
        assert_eq!(h[header::CONNECTION], "upgrade");
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let conn = super::super::ConnInfo {
            client: std::net::SocketAddr::from(([203, 0, 113, 7], 0)),
            peer: IpAddr::from([127, 0, 0, 1]),
            tls: true,
            client_cert: None,
        };
        add_forwarded(&mut h, &conn, &HeaderValue::from_static("a.example"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "203.0.113.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "a.example");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn header_map() -> impl Strategy<Value = HeaderMap> {
            let name = prop_oneof![
                Just("connection".to_string()),
                Just("keep-alive".to_string()),
                Just("te".to_string()),
                Just("transfer-encoding".to_string()),
                Just("upgrade".to_string()),
                Just("proxy-authorization".to_string()),
                "x-[a-z]{1,4}",
            ];
            let value = prop_oneof![
                "[ -~]{0,12}",
                Just("close, x-a".to_string()),
                Just("trailers".to_string()),
                Just("Upgrade".to_string()),
            ];
            prop::collection::vec((name, value), 0..10).prop_map(|pairs| {
                let mut h = HeaderMap::new();
                for (k, v) in pairs {
                    if let (Ok(k), Ok(v)) = (HeaderName::try_from(k), HeaderValue::try_from(v)) {
                        h.append(k, v);
                    }
                }
                h
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            /// No hop-by-hop header survives, nor any header `Connection` named; everything else
            /// does, untouched.
            #[test]
            fn stripping_leaves_only_end_to_end_headers(h in header_map()) {
                let named: Vec<String> = h
                    .get_all(header::CONNECTION)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .map(|t| t.trim().to_ascii_lowercase())
                    .collect();
                let mut out = h.clone();
                strip_hop_by_hop(&mut out, false);
                for hop in HOP_BY_HOP.iter().filter(|n| **n != header::TE) {
                    prop_assert!(!out.contains_key(hop), "{hop} survived");
                }
                prop_assert!(!out.contains_key(header::UPGRADE));
                if let Some(te) = out.get(header::TE) {
                    prop_assert_eq!(te, "trailers");
                }
                for (k, v) in &h {
                    let hop = HOP_BY_HOP.contains(k) || k == header::UPGRADE;
                    if !hop && !named.iter().any(|n| n == k.as_str()) {
                        prop_assert!(out.get_all(k).iter().any(|x| x == v), "{k} was lost");
                    }
                }
            }

            /// `X-Forwarded-For` keeps every earlier hop, however the client split them over
            /// header lines, and ends with the client.
            #[test]
            fn forwarded_for_keeps_every_earlier_hop(
                hops in prop::collection::vec((0u8..=255, 0u8..=255), 0..5),
                lines in 1usize..3,
                last in (0u8..=255, 0u8..=255),
            ) {
                let hops: Vec<String> = hops.iter().map(|(a, b)| format!("10.0.{a}.{b}")).collect();
                let mut h = HeaderMap::new();
                for chunk in hops.chunks(lines) {
                    h.append("x-forwarded-for", HeaderValue::try_from(chunk.join(", ")).map_err(|e| TestCaseError::fail(e.to_string()))?);
                }
                let client = IpAddr::from([192, 168, last.0, last.1]);
                let conn = super::super::super::ConnInfo {
                    client: std::net::SocketAddr::new(client, 0),
                    peer: client,
                    tls: false,
                    client_cert: None,
                };
                add_forwarded(&mut h, &conn, &HeaderValue::from_static("a.test"));
                let all: Vec<&str> = h
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .map(str::trim)
                    .collect();
                let mut want: Vec<String> = hops.clone();
                want.push(client.to_string());
                prop_assert_eq!(all, want);
            }
        }
    }
}
