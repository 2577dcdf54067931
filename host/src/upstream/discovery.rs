//! Keeping an upstream's targets in step with where they are found: DNS (`dns.rs`) and an etcd
//! key prefix under which service instances register themselves, each key with its lease (an
//! instance that stops renewing it is gone from etcd, and then from the balancer). One task per
//! upstream merges them and swaps the set in when it changed; requests in flight finish where
//! they are. A failed lookup keeps the targets there are.

use std::sync::{OnceLock, Weak};
use std::time::Duration;

use http::uri::Authority;

use super::{TargetSpec, Upstream, dns};
use crate::config;
use crate::etcd::{Etcd, EtcdError};

static ETCD: OnceLock<Option<(Etcd, Duration)>> = OnceLock::new();

/// The etcd cluster (`[etcd]`), set once at start.
pub fn init_etcd(cfg: Option<&config::EtcdConfig>) {
    let _ = ETCD.set(cfg.map(|c| (Etcd::new(&c.endpoints), c.poll_interval)));
}

pub(super) fn wanted(cfg: &config::Upstream) -> bool {
    cfg.etcd_prefix.is_some() || dns::wanted(cfg)
}

#[derive(Debug, thiserror::Error)]
enum FindError {
    #[error(transparent)]
    Dns(#[from] hickory_resolver::ResolveError),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("the upstream reads targets from etcd but [etcd] has no endpoints")]
    NoEtcd,
}

pub(super) fn spawn(up: Weak<Upstream>) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        loop {
            let Some(upstream) = up.upgrade() else { return };
            let next = match find(&upstream.config).await {
                Ok((specs, valid_for)) => {
                    if specs != current(&upstream) {
                        let shown: Vec<String> = specs
                            .iter()
                            .map(|s| s.addr.map_or(s.authority.to_string(), |a| a.to_string()))
                            .collect();
                        tracing::info!(upstream = %upstream.name, targets = ?shown, "discovery changed the targets");
                        upstream.set_targets(&specs);
                    }
                    valid_for
                }
                Err(e) => {
                    tracing::warn!(upstream = %upstream.name, error = %e, "discovery failed; keeping the targets there are");
                    upstream
                        .config
                        .dns_interval
                        .unwrap_or(dns::RETRY_AFTER_FAILURE)
                        .min(dns::RETRY_AFTER_FAILURE)
                }
            };
            drop(upstream);
            tokio::time::sleep(next).await;
        }
    });
}

/// Every target the upstream has now, and how long until it should look again.
async fn find(cfg: &config::Upstream) -> Result<(Vec<TargetSpec>, Duration), FindError> {
    let (mut specs, dns_valid) = dns::resolve(cfg).await?;
    let mut next = cfg
        .dns_interval
        .unwrap_or(dns_valid.clamp(dns::MIN_REFRESH, dns::MAX_REFRESH));
    if let Some(prefix) = &cfg.etcd_prefix {
        let Some(Some((etcd, poll))) = ETCD.get() else {
            return Err(FindError::NoEtcd);
        };
        for (key, value) in etcd.prefix(prefix).await? {
            match registered(&value) {
                Some(spec) => specs.push(spec),
                None => tracing::warn!(
                    key,
                    value,
                    "an etcd registration that is not \"host:port\" or {{\"address\": \"host:port\", \"weight\": N}}; skipped"
                ),
            }
        }
        next = next.min(*poll);
    }
    Ok((specs, next))
}

/// A registration's value: `"10.0.0.5:8080"` or `{"address": "10.0.0.5:8080", "weight": 2}`.
fn registered(value: &str) -> Option<TargetSpec> {
    let (address, weight) = match serde_json::from_str::<serde_json::Value>(value) {
        Ok(v) if v.is_object() => (
            v["address"].as_str()?.to_string(),
            v["weight"]
                .as_u64()
                .map_or(1, |w| w.clamp(1, u64::from(u32::MAX)) as u32),
        ),
        _ => (value.trim().to_string(), 1),
    };
    let authority: Authority = address.parse().ok()?;
    authority.port_u16()?;
    Some(TargetSpec {
        authority,
        addr: None,
        weight,
    })
}

fn current(up: &Upstream) -> Vec<TargetSpec> {
    up.targets()
        .list
        .iter()
        .map(|t| TargetSpec {
            authority: t.authority.clone(),
            addr: t.addr,
            weight: t.weight,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_as_text_or_json() {
        let plain = registered("10.0.0.5:8080").expect("plain");
        assert_eq!(plain.authority.as_str(), "10.0.0.5:8080");
        let json = registered(r#"{"address": "api-3.internal:9000", "weight": 4}"#).expect("json");
        assert_eq!(
            (json.authority.as_str(), json.weight),
            ("api-3.internal:9000", 4)
        );
        assert!(registered("no-port").is_none());
        assert!(registered(r#"{"weight": 2}"#).is_none());
    }
}
