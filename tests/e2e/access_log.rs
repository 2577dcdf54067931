//! The access log as an operator reads it: who asked (request id, trace, consumer, user agent),
//! where it went (route, target, tries), who answered, sizes and times; the fields the config
//! selects; a file that logrotate can move (SIGUSR1 reopens it); sampled successes.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// The gateway's config with `keys` added to its `[log]` table.
fn with_log(keys: &str, extra: &str) -> String {
    let base = Gateway::config(extra);
    assert!(base.contains("format = \"json\"\n"));
    base.replacen(
        "format = \"json\"\n",
        &format!("format = \"json\"\n{keys}\n"),
        1,
    )
}

/// The access lines (JSON) in `text`.
fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|j| j["target"] == "access")
        .collect()
}

/// Waits for the access line of `path` in `file`.
async fn line_for(file: &Path, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(l) = lines(&text).into_iter().find(|j| j["path"] == path) {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no access line for {path} in:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_tells_who_asked_where_it_went_and_who_answered() {
    let up = Upstream::echo("up").await;
    let dir = temp_dir("access");
    let file = dir.join("access.log");
    let gw = Gateway::start_text(&with_log(
        &format!("access_file = \"{}\"", file.display()),
        &(upstream_block("up", &[&up], "")
            + &plugin_block("request-id", "request_id", "")
            + &plugin_block("set-context", "set_context", "")
            + &plugin_block("deny", "deny", "")
            + r#"
[[routes]]
name = "api"
path_prefix = "/api"
upstream = "up"
plugins = [
  { name = "request-id" },
  { name = "set-context", config = { key = "consumer", from_header = "x-user" } },
  { name = "deny", config = { when_header = "x-blocked" } },
]
"#),
    ))
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = get_with(
        &gw.url("/api/orders?page=2"),
        &[
            ("x-user", "alice"),
            ("user-agent", "shop-app/1.2"),
            ("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01")),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let id = r.header("x-request-id").expect("request id").to_string();
    let l = line_for(&file, "/api/orders").await;
    assert_eq!(l["request_id"], id.as_str(), "{l}");
    assert_eq!(l["trace_id"], trace, "the client's trace continued: {l}");
    assert_eq!(l["consumer"], "alice");
    assert_eq!(l["user_agent"], "shop-app/1.2");
    assert_eq!(l["route"], "api");
    assert_eq!(l["upstream"], "up");
    assert_eq!(l["target_addr"], up.authority());
    assert_eq!(l["attempts"], 1);
    assert_eq!(l["status"], 200);
    assert_eq!(l["method"], "GET");
    assert_eq!(l["response_bytes"], r.body.len() as u64);
    assert!(l["answered_by"].is_null());
    let (total, upstream) = (l["duration_ms"].as_f64(), l["upstream_ms"].as_f64());
    assert!(
        matches!((total, upstream), (Some(t), Some(u)) if u > 0.0 && t >= u),
        "{l}"
    );
    assert!(l["timestamp"].is_string());
    // The gateway's own log has no access lines: they went to the file.
    assert!(lines(&gw.log()).is_empty(), "{}", gw.log());

    // Uploads count what came: a declared length, and a chunked body of no declared length.
    let body = "x".repeat(3000);
    for (path, chunked) in [("/api/sized", false), ("/api/chunked", true)] {
        let mut args = vec!["-s", "-o", "/dev/null", "--data-binary", body.as_str()];
        if chunked {
            args.extend(["-H", "transfer-encoding: chunked"]);
        }
        let url = gw.url(path);
        args.push(&url);
        assert!(curl(&args).0);
        let l = line_for(&file, path).await;
        assert_eq!(l["request_bytes"], 3000, "{l}");
    }

    // A plugin answered: it is named, and no upstream was asked.
    let r = get_with(&gw.url("/api/blocked"), &[("x-blocked", "1")]).await;
    assert_eq!(r.status, 403);
    let l = line_for(&file, "/api/blocked").await;
    assert_eq!(l["answered_by"], "deny", "{l}");
    assert!(l["upstream"].is_null() && l["upstream_ms"].is_null(), "{l}");
    assert_eq!(l["status"], 403);

    // logrotate: the file is moved, SIGUSR1 makes the gateway open a new one.
    let rotated = dir.join("access.log.1");
    std::fs::rename(&file, &rotated).expect("rotate");
    let (ok, _) = curl(&["-s", "-o", "/dev/null", &gw.url("/api/before-signal")]);
    assert!(ok);
    line_for(&rotated, "/api/before-signal").await;
    let killed = std::process::Command::new("kill")
        .args(["-USR1", &gw.pid().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    gw.wait_log("SIGUSR1: reopening the access log").await;
    let (ok, _) = curl(&["-s", "-o", "/dev/null", &gw.url("/api/after-signal")]);
    assert!(ok);
    line_for(&file, "/api/after-signal").await;
    let old = std::fs::read_to_string(&rotated).expect("rotated file");
    assert!(!old.contains("/api/after-signal"), "{old}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_fields_are_selectable_and_successes_can_be_sampled() {
    let up = Upstream::echo("up").await;
    let gw = Gateway::start_text(&with_log(
        "access_fields = [\"path\", \"status\"]\naccess_sample = 0.0",
        &(upstream_block("up", &[&up], "")
            + "[[routes]]\npath_prefix = \"/ok\"\nupstream = \"up\"\n"),
    ))
    .await;
    for i in 0..5 {
        assert_eq!(
            get(&gw.url(&format!("/ok/{i}"))).await.expect("get").status,
            200
        );
    }
    // Errors are always logged.
    assert_eq!(get(&gw.url("/missing")).await.expect("get").status, 404);
    let deadline = Instant::now() + Duration::from_secs(5);
    let l = loop {
        if let Some(l) = lines(&gw.log())
            .into_iter()
            .find(|j| j["path"] == "/missing")
        {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "no line for the 404: {}",
            gw.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let keys: Vec<&str> = l
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys.len(), 4, "level, target and the two fields: {l}");
    assert_eq!(l["status"], 404);
    assert!(
        lines(&gw.log()).iter().all(|j| j["status"] != 200),
        "successes sampled at 0: {}",
        gw.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_access_field_is_refused_with_the_list() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(["check", "-c"])
        .arg({
            let dir = temp_dir("fields");
            let path = dir.join("gateway.toml");
            std::fs::write(
                &path,
                "[log]\naccess_fields = [\"status\", \"referer\"]\n[server]\nallow_empty = true\n",
            )
            .expect("write");
            path
        })
        .output()
        .expect("wasmgate check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no field `referer`"), "{err}");
    assert!(err.contains("user_agent"), "the list of fields: {err}");
}
