//! Multi-tenancy: the tenant of each request, from its sources in order (the identity an auth
//! plugin set, e.g. jwt's `tenant_claim`; a header; the first label of the host; a host map),
//! checked against the configured tenants, put on the identity for later plugins (rate limits,
//! cache keys) and for the gateway's access log and plugin metrics, and sent to the tenant's own
//! upstream with its own headers. A tenant the token names always wins: a header naming another
//! tenant is refused, so tenant A's caller can never reach tenant B's upstream.

use std::collections::BTreeMap;

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to look, in order: "identity", "subdomain", { header = "x-tenant" },
    /// { hosts = { "api.acme.com" = "acme" } }.
    from: Vec<SourceConfig>,
    tenants: BTreeMap<String, TenantConfig>,
    /// A tenant for requests none of the sources names; without it they get 403.
    default: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum SourceConfig {
    Named(String),
    Header { header: String },
    Hosts { hosts: BTreeMap<String, String> },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TenantConfig {
    /// The tenant's upstream; the route's when absent.
    upstream: Option<String>,
    /// Request header edits for this tenant (`set`, `append`, `remove`, `rename`).
    #[serde(default)]
    headers: HeaderEdits,
}

enum Source {
    Identity,
    Subdomain,
    Header(String),
    Hosts(BTreeMap<String, String>),
}

pub struct Tenant {
    from: Vec<Source>,
    tenants: BTreeMap<String, TenantConfig>,
    default: Option<String>,
}

/// The first label of a host under a domain (`acme` of `acme.example.com` or `acme.localhost`);
/// none for an IP address or a bare domain (`example.com`), which name no tenant.
fn subdomain(host: &str) -> Option<&str> {
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let labels = host.split('.').count();
    let (first, rest) = host.split_once('.')?;
    (labels >= 3 || rest == "localhost").then_some(first)
}

impl Tenant {
    /// What `source` says the tenant is, if anything.
    fn read(source: &Source, req: &Request) -> Option<String> {
        let host = || {
            let a = req.authority().to_ascii_lowercase();
            a.rsplit_once(':')
                .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
                .map_or(a.clone(), |(h, _)| h.to_string())
        };
        match source {
            Source::Identity => Identity::tenant_of(req),
            Source::Header(h) => req.header(h).filter(|v| !v.is_empty()),
            Source::Subdomain => subdomain(&host()).map(str::to_string),
            Source::Hosts(map) => map.get(&host()).cloned(),
        }
    }

    /// The request's tenant, or the answer refusing it.
    fn resolve(&self, req: &Request) -> Result<String, Answer> {
        let mut found: Option<String> = None;
        for source in &self.from {
            let Some(t) = Self::read(source, req) else {
                continue;
            };
            match &found {
                None => found = Some(t),
                // A later source naming another tenant: two claims that disagree.
                Some(first) if *first != t => {
                    return Err(Answer::problem(
                        403,
                        &format!("the request names tenant `{t}`, but it belongs to `{first}`"),
                    ));
                }
                Some(_) => {}
            }
        }
        let tenant = found
            .or_else(|| self.default.clone())
            .ok_or_else(|| Answer::problem(403, "the request names no tenant"))?;
        if self.tenants.contains_key(&tenant) {
            Ok(tenant)
        } else {
            Err(Answer::problem(
                403,
                &format!("tenant `{tenant}` is not known here"),
            ))
        }
    }
}

#[plugin]
impl Plugin for Tenant {
    type Config = Config;

    fn new(c: Config) -> Result<Self, String> {
        if c.tenants.is_empty() {
            return Err("give `tenants`, e.g. { acme = { upstream = \"acme-api\" } }".into());
        }
        if c.from.is_empty() {
            return Err("give `from`, e.g. [\"identity\", { header = \"x-tenant\" }]".into());
        }
        let from = c
            .from
            .into_iter()
            .map(|s| match s {
                SourceConfig::Named(n) if n == "identity" => Ok(Source::Identity),
                SourceConfig::Named(n) if n == "subdomain" => Ok(Source::Subdomain),
                SourceConfig::Named(n) => Err(format!(
                    "`{n}` is not a tenant source: use \"identity\", \"subdomain\", {{ header = \"...\" }} or {{ hosts = {{ ... }} }}"
                )),
                SourceConfig::Header { header } => Ok(Source::Header(header.to_ascii_lowercase())),
                SourceConfig::Hosts { hosts } => Ok(Source::Hosts(
                    hosts.into_iter().map(|(h, t)| (h.to_ascii_lowercase(), t)).collect(),
                )),
            })
            .collect::<Result<Vec<_>, String>>()?;
        if let Some(d) = &c.default
            && !c.tenants.contains_key(d)
        {
            return Err(format!("the default tenant `{d}` is not in `tenants`"));
        }
        for (name, t) in &c.tenants {
            t.headers
                .check()
                .map_err(|e| format!("tenants.{name}.headers: {e}"))?;
        }
        Ok(Tenant {
            from,
            tenants: c.tenants,
            default: c.default,
        })
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        let tenant = match self.resolve(req) {
            Ok(t) => t,
            Err(answer) => return answer.into(),
        };
        Identity {
            tenant: Some(tenant.clone()),
            ..Identity::default()
        }
        .set_on(req);
        let Some(t) = self.tenants.get(&tenant) else {
            return Action::Continue;
        };
        let mut done = Ok(());
        if let Some(up) = &t.upstream {
            done = req.set_upstream(up, None);
        }
        done.and_then(|()| t.headers.apply(req)).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{self, TestHost, TestRequest};

    const CONFIG: &str = r#"{
        "from": ["identity", {"header": "x-tenant"}, {"hosts": {"api.globex.test": "globex"}}],
        "tenants": {
            "acme": {"upstream": "acme-api", "headers": {"set": {"x-tenant-id": "acme"}}},
            "globex": {"upstream": "globex-api"}
        }
    }"#;

    #[test]
    fn subdomains_come_from_names_under_a_domain_only() {
        assert_eq!(subdomain("acme.example.com"), Some("acme"));
        assert_eq!(subdomain("acme.localhost"), Some("acme"));
        assert_eq!(subdomain("example.com"), None);
        assert_eq!(subdomain("127.0.0.1"), None);
        assert_eq!(subdomain("[::1]"), None);
        assert_eq!(subdomain("localhost"), None);
    }

    #[test]
    fn a_header_picks_the_tenant_and_its_upstream() {
        let h = TestHost::<Tenant>::new(CONFIG).unwrap();
        let req = TestRequest::get("/").header("x-tenant", "acme");
        assert_eq!(testing::status(&h.request_headers(&req)), 200);
        assert_eq!(req.picked_upstream(), Some(("acme-api".into(), None)));
        assert_eq!(req.view().header("x-tenant-id").as_deref(), Some("acme"));
        assert_eq!(Identity::of(&req.view()).tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn the_token_wins_and_a_header_naming_another_tenant_is_refused() {
        let h = TestHost::<Tenant>::new(CONFIG).unwrap();
        let req = TestRequest::get("/")
            .context("tenant", "acme")
            .header("x-tenant", "globex");
        assert_eq!(testing::status(&h.request_headers(&req)), 403);
        assert_eq!(req.picked_upstream(), None);
        let same = TestRequest::get("/")
            .context("tenant", "acme")
            .header("x-tenant", "acme");
        assert_eq!(testing::status(&h.request_headers(&same)), 200);
    }

    #[test]
    fn unknown_or_missing_tenants_are_refused_unless_there_is_a_default() {
        let h = TestHost::<Tenant>::new(CONFIG).unwrap();
        let unknown = TestRequest::get("/").header("x-tenant", "initech");
        assert_eq!(testing::status(&h.request_headers(&unknown)), 403);
        assert_eq!(
            testing::status(&h.request_headers(&TestRequest::get("/"))),
            403
        );
        let with_default = TestHost::<Tenant>::new(
            r#"{"from": [{"header": "x-tenant"}], "tenants": {"acme": {}}, "default": "acme"}"#,
        )
        .unwrap();
        let req = TestRequest::get("/");
        assert_eq!(testing::status(&with_default.request_headers(&req)), 200);
        assert_eq!(req.view().context_get("tenant").as_deref(), Some("acme"));
    }

    #[test]
    fn bad_configs_are_refused() {
        for (config, says) in [
            (r#"{"from": ["identity"], "tenants": {}}"#, "give `tenants`"),
            (
                r#"{"from": ["cookie"], "tenants": {"a": {}}}"#,
                "`cookie` is not a tenant source",
            ),
            (
                r#"{"from": ["identity"], "tenants": {"a": {}}, "default": "b"}"#,
                "default tenant `b`",
            ),
            (
                r#"{"from": ["identity"], "tenants": {"a": {"headers": {"set": {"x y": "1"}}}}}"#,
                "tenants.a.headers",
            ),
        ] {
            let err = TestHost::<Tenant>::new(config).err().unwrap_or_default();
            assert!(err.contains(says), "{config}: {err}");
        }
    }
}
