//! Active health checks: one task per upstream that has `[upstreams.X.health.check]`.

use std::sync::Weak;

use super::Upstream;
use crate::config::HealthCheck;

pub(super) fn spawn(up: Weak<Upstream>, check: HealthCheck) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    handle.spawn(async move {
        let mut tick = tokio::time::interval(check.interval);
        loop {
            tick.tick().await;
            // Stops once a reload has dropped this upstream.
            let Some(up) = up.upgrade() else { return };
            for target in up.targets().list.iter() {
                let ok = up.probe(target, check.path.as_str(), check.timeout).await;
                if ok != target.healthy() {
                    tracing::info!(upstream = %up.name, target = %target.authority, healthy = ok, "health check changed state");
                }
                target.set_check_result(ok);
            }
        }
    });
}
