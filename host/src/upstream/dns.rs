//! Targets written as DNS names: each address a name resolves to (A and AAAA) is a target of
//! its own, and an upstream may take its targets from an SRV record. Names are resolved again
//! when their records expire (or every `dns_interval`); addresses that appear join the balancer
//! and those that vanish leave it without a reload, while requests in flight on them finish.
//! A failed lookup keeps the targets there are (`discovery.rs` applies the answers).

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};
use http::uri::Authority;

use super::TargetSpec;
use crate::config;

static RESOLVER: OnceLock<TokioResolver> = OnceLock::new();

/// Resolution is done here, not by the system's cache, so the records' TTLs are known.
pub(super) const MIN_REFRESH: Duration = Duration::from_secs(1);
pub(super) const MAX_REFRESH: Duration = Duration::from_secs(300);
pub(super) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// The name servers to ask (`[server] dns_servers`; the system's `/etc/resolv.conf` when
/// empty). Set once, at start.
pub fn init(servers: &[SocketAddr]) -> Result<(), ResolveError> {
    let mut builder = if servers.is_empty() {
        TokioResolver::builder_tokio()?
    } else {
        let mut group = NameServerConfigGroup::new();
        for s in servers {
            group.merge(NameServerConfigGroup::from_ips_clear(
                &[s.ip()],
                s.port(),
                true,
            ));
        }
        TokioResolver::builder_with_config(
            ResolverConfig::from_parts(None, vec![], group),
            TokioConnectionProvider::default(),
        )
    };
    // Each upstream schedules its own lookups by the records' TTLs: no second cache.
    builder.options_mut().cache_size = 0;
    let _ = RESOLVER.set(builder.build());
    Ok(())
}

fn resolver() -> Option<&'static TokioResolver> {
    if RESOLVER.get().is_none() {
        let _ = init(&[]);
    }
    RESOLVER.get()
}

fn is_name(authority: &Authority) -> bool {
    authority
        .host()
        .trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .is_err()
}

/// Whether an upstream has names to resolve.
pub(super) fn wanted(cfg: &config::Upstream) -> bool {
    cfg.srv.is_some()
        || cfg.targets.iter().any(|t| {
            t.get_ref()
                .address
                .as_str()
                .parse::<Authority>()
                .is_ok_and(|a| is_name(&a))
        })
}

/// The targets the config's names stand for now, and how long that answer holds.
pub(super) async fn resolve(
    cfg: &config::Upstream,
) -> Result<(Vec<TargetSpec>, Duration), ResolveError> {
    let Some(resolver) = resolver() else {
        return Err(ResolveError::from("no DNS resolver could be set up"));
    };
    let now = Instant::now();
    let mut valid_for = MAX_REFRESH;
    let mut specs = Vec::new();
    for t in &cfg.targets {
        let t = t.get_ref();
        let Ok(authority) = t.address.as_str().parse::<Authority>() else {
            continue;
        };
        if !is_name(&authority) {
            specs.push(TargetSpec {
                authority,
                addr: None,
                weight: t.weight,
            });
            continue;
        }
        let port = authority.port_u16().unwrap_or(80);
        let ips = resolver.lookup_ip(authority.host()).await?;
        valid_for = valid_for.min(ips.valid_until().saturating_duration_since(now));
        let mut addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
        addrs.sort();
        addrs.dedup();
        specs.extend(addrs.into_iter().map(|a| TargetSpec {
            authority: authority.clone(),
            addr: Some(a),
            weight: t.weight,
        }));
    }
    if let Some(srv) = &cfg.srv {
        let records = resolver.srv_lookup(srv.as_str()).await?;
        valid_for = valid_for.min(
            records
                .as_lookup()
                .valid_until()
                .saturating_duration_since(now),
        );
        // The lowest priority is the one in use; the others are for when it is gone.
        let best = records.iter().map(|r| r.priority()).min();
        for r in records.iter().filter(|r| Some(r.priority()) == best) {
            let host = r.target().to_utf8();
            let host = host.trim_end_matches('.');
            let Ok(authority) = format!("{host}:{}", r.port()).parse::<Authority>() else {
                continue;
            };
            let ips = resolver.lookup_ip(host).await?;
            valid_for = valid_for.min(ips.valid_until().saturating_duration_since(now));
            for ip in ips.iter() {
                specs.push(TargetSpec {
                    authority: authority.clone(),
                    addr: Some(SocketAddr::new(ip, r.port())),
                    weight: u32::from(r.weight()).max(1),
                });
            }
        }
    }
    Ok((specs, valid_for))
}
