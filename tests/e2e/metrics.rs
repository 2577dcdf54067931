//! The admin's `/metrics` as an operator's Prometheus sees it: every request counted by route,
//! method, status and upstream; targets, plugins, the store and the config; a scrape that
//! Debian's `promtool check metrics` accepts.

use std::time::{Duration, Instant};

use sha2::Digest;

use crate::harness::*;

fn routes(a: &Upstream) -> String {
    upstream_block("a", &[a], "")
        + &plugin_block("count", "count", "")
        + r#"
[[routes]]
name = "plain"
path_prefix = "/plain"
upstream = "a"

[[routes]]
name = "counted"
path_prefix = "/counted"
upstream = "a"
plugins = [{ name = "count", config = { window_s = 3600 } }]
"#
}

/// The value of the first series of `family` carrying every label, once it is there.
fn value(scrape: &str, family: &str, labels: &[&str]) -> Option<f64> {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split(['{', ' '])
                .next()
                .is_some_and(|name| name == family)
                && labels.iter().all(|label| l.contains(label))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Scrapes until `family{labels}` reads `want`: a request is counted when its response body
/// has been handed to the socket, a moment after the client may have read it.
async fn wait_value(gw: &Gateway, family: &str, labels: &[&str], want: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = gw.metrics().await;
        if value(&m, family, labels) == Some(want) || Instant::now() > deadline {
            assert_eq!(
                value(&m, family, labels),
                Some(want),
                "{family} {labels:?}:\n{m}"
            );
            return m;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn promtool(scrape: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; tests/run.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("write scrape");
    let out = child.wait_with_output().expect("promtool");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_requests_targets_plugins_and_reloads_and_passes_promtool() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&routes(&a)).await;
    for i in 0..5 {
        let r = get(&gw.url(&format!("/plain/item/{i}?q={i}")))
            .await
            .expect("get");
        assert_eq!(r.status, 200);
    }
    for _ in 0..3 {
        let (ok, _) = curl(&["-sf", "-X", "POST", "-d", "0123456789", &gw.url("/plain")]);
        assert!(ok);
    }
    for _ in 0..2 {
        assert_eq!(get(&gw.url("/counted")).await.expect("get").status, 200);
    }
    assert_eq!(get(&gw.url("/nowhere")).await.expect("get").status, 404);

    let req = "wasmgate_http_requests_total";
    wait_value(
        &gw,
        req,
        &[
            "route=\"plain\"",
            "method=\"GET\"",
            "status_class=\"2xx\"",
            "upstream=\"a\"",
        ],
        5.0,
    )
    .await;
    wait_value(&gw, req, &["route=\"plain\"", "method=\"POST\""], 3.0).await;
    wait_value(&gw, req, &["route=\"counted\"", "method=\"GET\""], 2.0).await;
    // No route: counted under the empty route with its exact status.
    wait_value(
        &gw,
        req,
        &[
            "route=\"\"",
            "status_class=\"4xx\"",
            "status=\"404\"",
            "upstream=\"\"",
        ],
        1.0,
    )
    .await;
    let m = wait_value(
        &gw,
        "wasmgate_http_request_duration_seconds_count",
        &["route=\"plain\"", "upstream=\"a\""],
        8.0,
    )
    .await;
    assert_eq!(
        value(
            &m,
            "wasmgate_http_request_body_bytes_total",
            &["route=\"plain\""]
        ),
        Some(30.0),
        "three 10-byte POST bodies"
    );
    assert!(
        value(
            &m,
            "wasmgate_http_response_body_bytes_total",
            &["route=\"plain\""]
        )
        .is_some_and(|b| b > 0.0)
    );
    assert_eq!(
        value(&m, "wasmgate_http_requests_in_flight", &[]),
        Some(0.0),
        "{m}"
    );
    // Cardinality: the paths and queries the clients sent are no label.
    assert!(!m.contains("/plain/item"), "{m}");

    // upstream targets: tries, their latency, the pool and health read at scrape time
    let target = format!("target=\"{}\"", a.addr);
    assert_eq!(
        value(
            &m,
            "wasmgate_upstream_requests_total",
            &["upstream=\"a\"", &target, "status_class=\"2xx\""]
        ),
        Some(10.0),
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            "wasmgate_upstream_request_duration_seconds_count",
            &["upstream=\"a\"", &target]
        ),
        Some(10.0)
    );
    assert_eq!(
        value(
            &m,
            "wasmgate_upstream_target_healthy",
            &["upstream=\"a\"", &target]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &m,
            "wasmgate_upstream_connections",
            &["upstream=\"a\"", &target, "state=\"idle\""]
        )
        .is_some_and(|n| n >= 1.0),
        "the echo upstream keeps connections alive: {m}"
    );
    assert_eq!(
        value(
            &m,
            "wasmgate_upstream_breaker_open",
            &["upstream=\"a\"", &target]
        ),
        Some(0.0)
    );

    // plugins: calls by phase, their duration, instances, the file's hash, the store
    let count = [
        "plugin=\"count\"",
        "route=\"counted\"",
        "phase=\"request_headers\"",
    ];
    assert_eq!(
        value(&m, "wasmgate_plugin_calls_total", &count),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "wasmgate_plugin_call_duration_seconds_count", &count),
        Some(2.0)
    );
    assert!(
        value(&m, "wasmgate_plugin_instances", &["plugin=\"count\""]).is_some_and(|n| n >= 1.0)
    );
    let wasm = std::fs::read(plugin("count")).expect("count.wasm");
    let sha = sha2::Sha256::digest(&wasm)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert_eq!(
        value(
            &m,
            "wasmgate_plugin_info",
            &["plugin=\"count\"", &format!("sha256=\"{sha}\"")]
        ),
        Some(1.0),
        "{m}"
    );
    // The same, as the admin's `/plugins` lists it.
    let plugins = get(&gw.admin_url("/plugins"))
        .await
        .expect("plugins")
        .json();
    let count = &plugins["count"];
    assert_eq!(count["sha256"], sha.as_str(), "{plugins}");
    assert_eq!(count["kind"], "plugin");
    assert_eq!(count["routes"], serde_json::json!(["counted"]));
    assert_eq!(count["calls"], 2);
    assert_eq!(count["failures"], 0);
    assert!(
        count["instances"].as_u64().is_some_and(|n| n >= 1),
        "{plugins}"
    );
    assert!(
        count["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("count.wasm")),
        "{plugins}"
    );
    // The plugin's own counter, with `_total` added and HELP.
    assert_eq!(
        value(&m, "wasmgate_plugin_requests_total", &["plugin=\"count\""]),
        Some(2.0)
    );
    assert!(m.contains("# HELP wasmgate_plugin_requests_total "), "{m}");
    assert!(
        value(
            &m,
            "wasmgate_kv_operations_total",
            &["backend=\"memory\"", "result=\"ok\""]
        )
        .is_some_and(|n| n >= 2.0),
        "{m}"
    );
    assert_eq!(
        value(&m, "wasmgate_store_up", &["backend=\"memory\""]),
        Some(1.0)
    );

    // connections and the build
    assert!(
        value(&m, "wasmgate_connections_total", &[]).is_some_and(|n| n >= 1.0),
        "{m}"
    );
    assert!(m.contains("wasmgate_connections_open{"), "{m}");
    assert!(
        m.contains(&format!(
            "wasmgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{m}"
    );
    assert_eq!(value(&m, "wasmgate_config_generation", &[]), Some(1.0));

    // reloads, applied and refused
    gw.write_config(
        &(routes(&a) + "[[routes]]\nname = \"more\"\npath = \"/more\"\nupstream = \"a\"\n"),
    );
    gw.wait_generation(2).await;
    let m = wait_value(
        &gw,
        "wasmgate_config_reloads_total",
        &["result=\"success\""],
        1.0,
    )
    .await;
    assert_eq!(value(&m, "wasmgate_config_generation", &[]), Some(2.0));
    assert_eq!(
        value(&m, "wasmgate_config_last_reload_success", &[]),
        Some(1.0)
    );
    gw.write_config(&(routes(&a) + "[[routes]]\npath = \"/x\"\nupstream = \"nowhere\"\n"));
    let m = wait_value(
        &gw,
        "wasmgate_config_reloads_total",
        &["result=\"failure\""],
        1.0,
    )
    .await;
    assert_eq!(
        value(&m, "wasmgate_config_last_reload_success", &[]),
        Some(0.0)
    );
    assert_eq!(value(&m, "wasmgate_config_generation", &[]), Some(2.0));
    // The admin keeps the reloads, newest first, the refused one with its error.
    let reloads = get(&gw.admin_url("/reloads"))
        .await
        .expect("reloads")
        .json();
    assert_eq!(reloads[0]["applied"], false, "{reloads}");
    assert_eq!(reloads[0]["generation"], 2);
    assert!(
        reloads[0]["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("nowhere")),
        "{reloads}"
    );
    assert_eq!(reloads[1]["applied"], true);
    assert_eq!(reloads[1]["generation"], 2);
    // Counts carry on across reloads.
    assert_eq!(
        value(&m, req, &["route=\"plain\"", "method=\"GET\""]),
        Some(5.0)
    );

    let (ok, out) = promtool(&m);
    assert!(ok, "promtool check metrics:\n{out}\n{m}");

    // Every family the gateway wrote is in docs/METRICS.md, and every name the Grafana
    // dashboard queries is one of them.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/METRICS.md")).expect("docs/METRICS.md");
    let documented = |family: &str| doc.contains(&format!("`{family}`"));
    let plugin_own = ["wasmgate_plugin_requests_total"];
    for family in m.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let family = family.split(' ').next().unwrap_or("");
        assert!(
            documented(family) || plugin_own.contains(&family),
            "{family} is not in docs/METRICS.md"
        );
    }
    let dashboard =
        std::fs::read_to_string(root.join("docs/grafana-dashboard.json")).expect("dashboard");
    let parsed: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    assert!(parsed["panels"].as_array().is_some_and(|p| p.len() > 10));
    let mut queried = 0;
    for (i, _) in dashboard.match_indices("wasmgate_") {
        let name: String = dashboard[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            documented(family),
            "the dashboard queries {name}, which is no family"
        );
        queried += 1;
    }
    assert!(queried > 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_request_metrics_off_requests_are_not_counted() {
    let a = Upstream::echo("a").await;
    let gw = Gateway::start(&(routes(&a) + "[metrics]\nenabled = false\n")).await;
    assert_eq!(get(&gw.url("/plain")).await.expect("get").status, 200);
    assert_eq!(get(&gw.url("/nowhere")).await.expect("get").status, 404);
    assert_eq!(get(&gw.url("/counted")).await.expect("get").status, 200);
    let m = gw.metrics().await;
    // Tries are counted before the response head leaves; requests, a moment after its body.
    assert_eq!(
        value(&m, "wasmgate_upstream_requests_total", &[]),
        None,
        "{m}"
    );
    assert_eq!(value(&m, "wasmgate_plugin_calls_total", &[]), None, "{m}");
    assert_eq!(value(&m, "wasmgate_http_requests_total", &[]), None, "{m}");
    // What is read at scrape time is still there.
    assert_eq!(
        value(&m, "wasmgate_config_generation", &[]),
        Some(1.0),
        "{m}"
    );
}
