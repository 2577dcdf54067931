//! The admin's `/metrics`: the recorder's families, then the state read at scrape time from the
//! running config (pools, health, breakers, plugin instances and files, the store). Read now
//! rather than kept as gauges, so a target or plugin a reload removed leaves no stale series.

use std::fmt::Write as _;

use crate::runtime::Shared;
use crate::telemetry::histogram::write_labels;
use crate::upstream::breaker::Breaker;

pub fn render(shared: &Shared) -> Option<String> {
    let mut out = crate::telemetry::metrics::render()?;
    let rt = shared.current.load();
    let mut w = Families::new(&mut out);

    w.family(
        "wasmgate_config_generation",
        "gauge",
        "The running config's generation: 1 at start, one more per applied reload.",
    );
    w.sample("wasmgate_config_generation", &[], rt.generation as f64);

    w.family(
        "wasmgate_upstream_connections",
        "gauge",
        "Connections to a target, by upstream, target and state (idle: pooled; busy: requests in flight).",
    );
    for (name, up) in rt.upstreams.iter() {
        for t in &up.targets().list {
            let target = t.authority.as_str();
            let idle = t.idle_connections() as f64;
            let busy = t.in_flight() as f64;
            w.sample(
                "wasmgate_upstream_connections",
                &[("upstream", name), ("target", target), ("state", "idle")],
                idle,
            );
            w.sample(
                "wasmgate_upstream_connections",
                &[("upstream", name), ("target", target), ("state", "busy")],
                busy,
            );
        }
    }
    w.family(
        "wasmgate_upstream_target_healthy",
        "gauge",
        "1 while a target is in rotation (its health check passes and its breaker admits), else 0.",
    );
    for (name, up) in rt.upstreams.iter() {
        for t in &up.targets().list {
            w.sample(
                "wasmgate_upstream_target_healthy",
                &[("upstream", name), ("target", t.authority.as_str())],
                f64::from(u8::from(t.healthy())),
            );
        }
    }
    w.family(
        "wasmgate_upstream_breaker_open",
        "gauge",
        "1 while a breaker is open or half-open, by upstream and target (empty target: the upstream's own breaker).",
    );
    let open = |b: &Breaker| f64::from(u8::from(!b.is_closed()));
    for (name, up) in rt.upstreams.iter() {
        for t in &up.targets().list {
            w.sample(
                "wasmgate_upstream_breaker_open",
                &[("upstream", name), ("target", t.authority.as_str())],
                open(&t.breaker),
            );
        }
        if let Some(b) = &up.breaker {
            w.sample(
                "wasmgate_upstream_breaker_open",
                &[("upstream", name), ("target", "")],
                open(b),
            );
        }
    }

    w.family(
        "wasmgate_plugin_instances",
        "gauge",
        "Idle plugin instances kept for reuse, by plugin and route.",
    );
    for route in rt.router.values() {
        for step in &route.chain.steps {
            w.sample(
                "wasmgate_plugin_instances",
                &[("plugin", step.name()), ("route", &route.name)],
                step.idle_instances() as f64,
            );
        }
    }
    w.family(
        "wasmgate_plugin_info",
        "gauge",
        "1 for each plugin in use, with its file and the file's content hash (sha256).",
    );
    let mut plugins = std::collections::BTreeMap::new();
    for route in rt.router.values() {
        for step in &route.chain.steps {
            plugins.entry(step.name()).or_insert(&step.module);
        }
    }
    for (name, m) in plugins {
        let path = m.path.display().to_string();
        let hash = m.sha256();
        w.sample(
            "wasmgate_plugin_info",
            &[("plugin", name), ("file", &path), ("sha256", &hash)],
            1.0,
        );
    }

    w.family(
        "wasmgate_store_up",
        "gauge",
        "1 while the plugins' key-value store answers, by backend.",
    );
    let store = &shared.plugins.store;
    w.sample(
        "wasmgate_store_up",
        &[("backend", store.backend())],
        f64::from(u8::from(store.available())),
    );
    Some(out)
}

/// Writes families in the Prometheus text format.
struct Families<'a> {
    out: &'a mut String,
}

impl<'a> Families<'a> {
    fn new(out: &'a mut String) -> Self {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        Families { out }
    }

    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        write_labels(self.out, labels.iter().copied(), None);
        let _ = writeln!(self.out, " {value}");
    }
}
