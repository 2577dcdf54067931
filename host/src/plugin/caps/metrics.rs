//! `metrics`: plugin counters and histograms, exported on the admin's `/metrics` as
//! `wasmgate_plugin_<name>` (counters end in `_total`) with HELP, a `plugin` label, and a
//! `tenant` label when the request has a tenant (the identity's `tenant` in its context;
//! bounded by the tenants a config names).

use std::collections::HashSet;
use std::sync::{LazyLock, RwLock};

use crate::plugin::bindings::metrics::Host;
use crate::plugin::instance::HostState;

/// Prometheus names allow `[a-zA-Z0-9_]`; anything else becomes `_`.
fn clean(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Names of the gateway's own plugin families, which a plugin's metric must not take.
const RESERVED: &[&str] = &[
    "calls",
    "calls_total",
    "call_duration_seconds",
    "failures",
    "failures_total",
    "log_dropped",
    "log_dropped_total",
    "instances",
    "info",
];

fn metric_name(name: &str) -> String {
    let name = clean(name);
    if RESERVED.contains(&name.as_str()) {
        format!("wasmgate_plugin_own_{name}")
    } else {
        format!("wasmgate_plugin_{name}")
    }
}

/// Gives a plugin's metric a HELP line the first time it is written (Prometheus tools expect
/// one on every family). A plugin that writes one name as both kinds gets the first.
fn describe(name: &str, plugin: &str, histogram: bool) {
    static DESCRIBED: LazyLock<RwLock<HashSet<String>>> = LazyLock::new(Default::default);
    if DESCRIBED.read().is_ok_and(|d| d.contains(name)) {
        return;
    }
    let Ok(mut described) = DESCRIBED.write() else {
        return;
    };
    if described.insert(name.to_string()) {
        let help = format!("Written by the plugin `{plugin}` (first seen from it).");
        if histogram {
            metrics::describe_histogram!(name.to_string(), help);
        } else {
            metrics::describe_counter!(name.to_string(), help);
        }
    }
}

fn labels(
    plugin: &str,
    tenant: Option<&str>,
    labels: Vec<(String, String)>,
) -> Vec<metrics::Label> {
    let mut out = Vec::with_capacity(labels.len() + 2);
    out.push(metrics::Label::new("plugin", plugin.to_string()));
    if let Some(t) = tenant {
        out.push(metrics::Label::new("tenant", t.to_string()));
    }
    for (k, v) in labels {
        let k = clean(&k);
        if k != "plugin" && !(k == "tenant" && tenant.is_some()) && !k.is_empty() {
            out.push(metrics::Label::new(k, v));
        }
    }
    out
}

impl HostState {
    fn metric_labels(&self, l: Vec<(String, String)>) -> Vec<metrics::Label> {
        let tenant = self
            .exchange
            .as_deref()
            .and_then(|ex| ex.context_value("tenant"));
        labels(&self.env.name, tenant, l)
    }
}

impl Host for HostState {
    fn counter_add(&mut self, name: String, value: u64, l: Vec<(String, String)>) {
        // Prometheus counters end in `_total`; plugins need not know it.
        let mut name = metric_name(&name);
        if !name.ends_with("_total") {
            name.push_str("_total");
        }
        describe(&name, &self.env.name, false);
        metrics::counter!(name, self.metric_labels(l)).increment(value);
    }

    fn histogram_record(&mut self, name: String, value: f64, l: Vec<(String, String)>) {
        let name = metric_name(&name);
        describe(&name, &self.env.name, true);
        metrics::histogram!(name, self.metric_labels(l)).record(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_metric_cannot_take_a_gateway_family() {
        assert_eq!(
            metric_name("hits-per.route"),
            "wasmgate_plugin_hits_per_route"
        );
        assert_eq!(metric_name("failures"), "wasmgate_plugin_own_failures");
        assert_eq!(
            metric_name("calls_total"),
            "wasmgate_plugin_own_calls_total"
        );
    }
}
