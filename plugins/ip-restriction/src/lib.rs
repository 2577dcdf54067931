//! Allow and deny lists of CIDR ranges (IPv4 and IPv6). The client is the TCP peer, unless the
//! peer is a trusted proxy: then it is the right-most address in `X-Forwarded-For` that is not a
//! trusted proxy. A deny match wins; with an allow list, only matches pass. 403 otherwise.

use std::net::IpAddr;

use ipnet::IpNet;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRestriction {
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    /// Proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(skip)]
    nets: Nets,
}

#[derive(Default)]
struct Nets {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    trusted: Vec<IpNet>,
}

fn parse(list: &[String], what: &str) -> Result<Vec<IpNet>, String> {
    list.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{what}: `{s}` is not an IP address or CIDR range"))
        })
        .collect()
}

fn contains(nets: &[IpNet], ip: IpAddr) -> bool {
    nets.iter().any(|n| n.contains(&ip))
}

impl IpRestriction {
    /// The client as far as trusted proxies let us see.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[String]) -> IpAddr {
        if !contains(&self.nets.trusted, peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = forwarded_for
            .iter()
            .flat_map(|h| h.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !contains(&self.nets.trusted, **ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }

    pub fn allowed(&self, ip: IpAddr) -> bool {
        !contains(&self.nets.deny, ip)
            && (self.nets.allow.is_empty() || contains(&self.nets.allow, ip))
    }
}

#[plugin]
impl Plugin for IpRestriction {
    type Config = Self;

    fn new(mut c: Self) -> Result<Self, String> {
        c.nets = Nets {
            allow: parse(&c.allow, "allow")?,
            deny: parse(&c.deny, "deny")?,
            trusted: parse(&c.trusted_proxies, "trusted_proxies")?,
        };
        if c.nets.allow.is_empty() && c.nets.deny.is_empty() {
            return Err("set `allow`, `deny` or both".into());
        }
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let Ok(peer) = req.client_ip().parse::<IpAddr>() else {
            return Answer::problem(403, "the client address is unknown").into();
        };
        let ip = self.client(peer, &req.header_all("x-forwarded-for"));
        if self.allowed(ip) {
            req.context_set("client-ip", &ip.to_string());
            Action::Continue
        } else {
            Answer::problem(403, &format!("{ip} may not use this route")).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, status};

    #[test]
    fn allow_deny_v4_v6_and_trusted_proxies() {
        let h = TestHost::<IpRestriction>::new(
            r#"{"allow": ["10.0.0.0/8", "2001:db8::/32"], "deny": ["10.0.0.66"], "trusted_proxies": ["127.0.0.1/32"]}"#,
        )
        .unwrap();
        let from = |ip: &str| status(&h.request_headers(&TestRequest::get("/").client_ip(ip)));
        assert_eq!(from("10.1.2.3"), 200);
        assert_eq!(from("2001:db8::1"), 200);
        assert_eq!(from("10.0.0.66"), 403);
        assert_eq!(from("192.168.1.1"), 403);
        let via = |xff: &str| {
            status(
                &h.request_headers(
                    &TestRequest::get("/")
                        .client_ip("127.0.0.1")
                        .header("x-forwarded-for", xff),
                ),
            )
        };
        assert_eq!(via("10.9.9.9"), 200);
        assert_eq!(via("10.9.9.9, 127.0.0.1"), 200, "trusted hops are skipped");
        assert_eq!(
            via("10.9.9.9, 192.168.1.1"),
            403,
            "the right-most untrusted hop counts"
        );
        let untrusted = status(
            &h.request_headers(
                &TestRequest::get("/")
                    .client_ip("192.168.1.1")
                    .header("x-forwarded-for", "10.1.1.1"),
            ),
        );
        assert_eq!(
            untrusted, 403,
            "an untrusted peer cannot claim another address"
        );
        assert!(TestHost::<IpRestriction>::new(r#"{"allow": ["10.0.0.0/33"]}"#).is_err());
        assert!(TestHost::<IpRestriction>::new(r#"{}"#).is_err());
    }
}
