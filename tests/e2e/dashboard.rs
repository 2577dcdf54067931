//! The admin dashboard in a real browser: headless Chromium (Debian's `chromium`) driven over
//! the DevTools protocol. The page loads without console errors, shows the test config's routes
//! and upstream, and its numbers move after traffic. Its screenshot is kept in
//! `target/test-artifacts/dashboard.png`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::*;

/// A headless Chromium and a DevTools session on its one page.
struct Browser {
    _process: tokio::process::Child,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Events received so far (console calls, exceptions, log entries).
    events: Vec<Value>,
}

impl Browser {
    async fn start() -> Browser {
        let profile = temp_dir("chromium");
        let mut process = tokio::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chromium (Debian's `chromium` package; tests/run.sh installs it)");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let mut lines = BufReader::new(process.stderr.take().expect("stderr")).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let rest = url.trim_start_matches("ws://127.0.0.1:");
                    return rest.split('/').next().map(str::to_string);
                }
            }
            None
        })
        .await
        .expect("chromium said where DevTools listens")
        .expect("a DevTools port");
        // Keep reading its stderr, so a full pipe never stalls it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let targets = get(&format!("http://127.0.0.1:{port}/json/list"))
            .await
            .expect("DevTools targets")
            .json();
        let ws = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (page, _) = tokio_tungstenite::connect_async(ws)
            .await
            .expect("DevTools");
        let mut b = Browser {
            _process: process,
            page,
            next_id: 0,
            events: Vec::new(),
        };
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            b.call(domain, json!({})).await;
        }
        b
    }

    /// Calls a DevTools method and returns its result; events that arrive meanwhile are kept.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({ "id": id, "method": method, "params": params });
        self.page
            .send(Message::text(msg.to_string()))
            .await
            .expect("send");
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.page.next())
                .await
                .expect("DevTools answers")
                .expect("DevTools open")
                .expect("frame");
            let Message::Text(text) = frame else { continue };
            let v: Value = serde_json::from_str(&text).expect("json");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// Evaluates `js` in the page, returning its value.
    async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true }),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{js}: {r}");
        r["result"]["value"].clone()
    }

    /// Waits until `js` evaluates to something `done` accepts, and returns it.
    async fn wait_for(&mut self, js: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.eval(js).await;
            if done(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{js} stayed {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Console errors, uncaught exceptions and error log entries (failed loads, CSP) so far.
    fn errors(&self) -> Vec<&Value> {
        self.events
            .iter()
            .filter(|e| match e["method"].as_str() {
                Some("Runtime.consoleAPICalled") => e["params"]["type"] == "error",
                Some("Runtime.exceptionThrown") => true,
                Some("Log.entryAdded") => e["params"]["entry"]["level"] == "error",
                _ => false,
            })
            .collect()
    }
}

/// The route rows: `[name, req/s, requests]` each.
const ROWS: &str = r##"[...document.querySelectorAll("#routes tbody tr[data-key]")].map(tr =>
  [tr.dataset.key, tr.querySelector(".rate").textContent, tr.querySelector(".requests").textContent])"##;

fn row<'a>(rows: &'a Value, name: &str) -> Option<&'a Value> {
    rows.as_array()?.iter().find(|r| r[0] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_routes_and_its_numbers_move_with_traffic() {
    let up = Upstream::echo("orders").await;
    let dir = temp_dir("dashboard");
    let token_file = dir.join("admin-token");
    let token = "a-dashboard-test-token";
    std::fs::write(&token_file, token).expect("token");
    let settings = Settings {
        admin: format!("token = \"${{file:{}}}\"", token_file.display()),
        ..Settings::default()
    };
    let gw = Gateway::start_with(
        &settings,
        &(upstream_block("orders", &[&up], "")
            + &plugin_block("request-id", "request_id", "")
            + r#"
[[routes]]
name = "api"
path_prefix = "/api"
upstream = "orders"
plugins = [{ name = "request-id" }]

[[routes]]
name = "static"
path_prefix = "/static"
upstream = "orders"
"#),
    )
    .await;

    let mut browser = Browser::start().await;
    let url = gw.admin_url(&format!("/dashboard#token={token}"));
    browser.call("Page.navigate", json!({ "url": url })).await;
    let rows = browser
        .wait_for(ROWS, |v| v.as_array().is_some_and(|a| a.len() == 2))
        .await;
    assert!(
        row(&rows, "api").is_some() && row(&rows, "static").is_some(),
        "{rows}"
    );
    let status = browser
        .eval(r#"document.getElementById("status").textContent"#)
        .await;
    assert!(
        status.as_str().is_some_and(|s| s.starts_with("updated")),
        "the page read the admin with the token: {status}"
    );
    let upstreams = browser
        .eval(
            r##"[...document.querySelectorAll("#upstreams tbody tr")].map(tr => tr.textContent)"##,
        )
        .await;
    assert!(
        upstreams.to_string().contains(&up.addr.to_string())
            && upstreams.to_string().contains("healthy"),
        "{upstreams}"
    );
    let before: u64 = row(&rows, "api")
        .and_then(|r| r[2].as_str()?.parse().ok())
        .expect("count");

    // Traffic on `api` while the page polls: its count grows and its rate is shown.
    let sent = 40;
    for i in 0..sent {
        let r = get(&gw.url(&format!("/api/orders/{i}")))
            .await
            .expect("answer");
        assert_eq!(r.status, 200);
    }
    let rows = browser
        .wait_for(ROWS, |rows| {
            row(rows, "api").is_some_and(|r| {
                let count: u64 = r[2].as_str().and_then(|c| c.parse().ok()).unwrap_or(0);
                let rate: f64 = r[1].as_str().and_then(|c| c.parse().ok()).unwrap_or(0.0);
                count >= before + sent && rate > 0.0
            })
        })
        .await;
    assert_eq!(
        row(&rows, "static").map(|r| r[2].clone()),
        Some(Value::from("0")),
        "{rows}"
    );

    // A refused reload shows with its error; the routes stay.
    gw.write_config_text("[[routes]]\nupstream = \"nowhere\"\n");
    gw.signal("HUP");
    let reloads = browser
        .wait_for(
            r##"[...document.querySelectorAll("#reloads tbody tr")].map(tr => tr.textContent)"##,
            |v| v.to_string().contains("refused"),
        )
        .await;
    assert!(reloads.to_string().contains("nowhere"), "{reloads}");

    let shot = browser
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().expect("screenshot"))
        .expect("base64");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    std::fs::write(artifacts.join("dashboard.png"), png).expect("screenshot written");

    // Last, so every poll of the run is covered.
    let errors = browser.errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}
