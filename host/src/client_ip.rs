//! The real client address behind trusted proxies: when the connection comes from one of
//! `[server] trusted_proxies`, the forwarding header (`X-Forwarded-For` or `Forwarded`) is read
//! from the right, skipping trusted hops; the first address that is not trusted is the client
//! (nginx's `real_ip_recursive on`). From anyone else the header is not believed.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

use crate::config::ClientIpHeader;

#[derive(Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ClientIpHeader,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>, header: ClientIpHeader) -> Self {
        TrustedProxies { nets, header }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request that came from `peer`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<Option<IpAddr>> = match self.header {
            ClientIpHeader::XForwardedFor => headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|h| parse_addr(h.trim()))
                .collect(),
            ClientIpHeader::Forwarded => headers
                .get_all(http::header::FORWARDED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(forwarded_for)
                .collect(),
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            // An address that cannot be read (obfuscated, `unknown`, garbage) ends the walk:
            // nothing to its left can be vouched for.
            match hop {
                Some(ip) => client = ip,
                None => break,
            }
        }
        client
    }
}

/// `203.0.113.7`, `2001:db8::1`, `203.0.113.7:4711`, `[2001:db8::1]:4711`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse().ok())
        })
}

/// The `for=` of one `Forwarded` element (RFC 7239): `for=192.0.2.60;proto=http`,
/// `for="[2001:db8:cafe::17]:4711"`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_addr(v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(header: ClientIpHeader) -> TrustedProxies {
        TrustedProxies::new(
            vec![
                "10.0.0.0/8".parse().expect("net"),
                "127.0.0.1/32".parse().expect("net"),
            ],
            header,
        )
    }

    fn headers(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, v.parse().expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let t = trusted(ClientIpHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["6.6.6.6, 203.0.113.7", "10.1.2.3"]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("203.0.113.7"));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let t = trusted(ClientIpHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["1.2.3.4"]);
        assert_eq!(t.client(ip("198.51.100.9"), &h), ip("198.51.100.9"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let t = trusted(ClientIpHeader::XForwardedFor);
        let h = headers("x-forwarded-for", &["1.2.3.4, nonsense, 10.0.0.9"]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("10.0.0.9"));
    }

    #[test]
    fn forwarded_for_values_with_ports_and_brackets() {
        let t = trusted(ClientIpHeader::Forwarded);
        let h = headers(
            "forwarded",
            &["for=\"[2001:db8:cafe::17]:4711\";proto=https, for=10.0.0.2"],
        );
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("2001:db8:cafe::17"));
    }
}
