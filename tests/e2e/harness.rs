//! Test harness: the real `wasmgate` binary in front of real upstream servers, driven by real
//! clients. Every server binds 127.0.0.1:0; the gateway gets ports picked the same way.

#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type Body = BoxBody<Bytes, BoxError>;
pub type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync,
>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// An upstream's answer: 200 with this content type, these headers and body.
pub fn answer(ct: &str, extra: &[(&str, &str)], body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_str(ct).expect("valid"),
    );
    for (k, v) in extra {
        r.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("valid"),
            http::HeaderValue::from_str(v).expect("valid"),
        );
    }
    r
}

/// A body that sends `first` at once and `rest` only once `release` is notified: an upstream
/// still working on its answer, to show what streams through.
pub fn held_body(first: Bytes, rest: Bytes, release: Arc<tokio::sync::Notify>) -> Body {
    let chunks = futures_util::stream::unfold(0, move |n| {
        let (release, first, rest) = (release.clone(), first.clone(), rest.clone());
        async move {
            match n {
                0 => Some((Ok::<_, BoxError>(hyper::body::Frame::data(first)), 1)),
                1 => {
                    release.notified().await;
                    Some((Ok(hyper::body::Frame::data(rest)), 2))
                }
                _ => None,
            }
        }
    });
    http_body_util::StreamBody::new(chunks).boxed()
}

/// Reads from `conn` into `got` until `done` holds, or fails the test after 10 s saying `what`.
pub async fn read_until(
    conn: &mut tokio::net::TcpStream,
    got: &mut Vec<u8>,
    done: impl Fn(&[u8]) -> bool,
    what: &str,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 16 * 1024];
    tokio::time::timeout(Duration::from_secs(10), async {
        while !done(got) {
            let n = conn.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "closed before {what}: {}",
                String::from_utf8_lossy(got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within 10 s"));
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "wasmgate-test-{}-{}-{tag}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[path = "../build_plugins.rs"]
mod build_plugins;
pub use build_plugins::plugins_built;

/// A plugin built from `plugins/` (see [`plugins_built`]).
pub fn plugin(name: &str) -> PathBuf {
    plugins_built();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/plugins")
        .join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        path.is_file(),
        "{} is missing from what plugins/build.sh built",
        path.display()
    );
    path
}

/// The compiled-plugin cache the test gateways share (its files are named by content).
pub fn plugin_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-plugin-cache")
}

/// `wasmgate check -c path`: whether it accepted the file, and what it wrote to stderr.
pub fn check(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wasmgate"))
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run wasmgate check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `wasmgate check` on a config: must fail; returns what it printed.
pub fn check_refuses(extra: &str) -> String {
    let dir = temp_dir("check");
    let path = dir.join("gateway.toml");
    std::fs::write(&path, Gateway::config(extra)).expect("write");
    let (accepted, err) = check(&path);
    assert!(!accepted, "check accepted:\n{extra}");
    let _ = std::fs::remove_dir_all(dir);
    err
}

/// A `[plugins.NAME]` block for a built plugin, plus `extra` settings.
pub fn plugin_block(name: &str, file: &str, extra: &str) -> String {
    format!(
        "[plugins.{name}]\nfile = \"{}\"\n{extra}\n",
        plugin(file).display()
    )
}

// ---------------------------------------------------------------- upstream servers

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1, and HTTP/2 with prior knowledge.
    Auto,
    /// HTTP/2 only (prior knowledge).
    H2,
}

/// A real HTTP server on 127.0.0.1:0 that counts connections and requests.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub connections: Arc<AtomicUsize>,
    pub requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Answers every request with JSON describing it and naming this server.
    pub async fn echo(name: &str) -> Upstream {
        let n = name.to_string();
        Self::start(name, Proto::Auto, None, echo_handler(n)).await
    }

    /// A plain HTTP server (HTTP/1.1 and h2c) answering with `f`.
    pub async fn serve<F, Fut>(name: &str, f: F) -> Upstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Self::start(name, Proto::Auto, None, handler(f)).await
    }

    pub async fn start(
        name: &str,
        proto: Proto,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Handler,
    ) -> Upstream {
        Self::start_at("127.0.0.1:0", name, proto, tls, handler).await
    }

    /// An echo server on a given address (e.g. another loopback IP, for DNS tests).
    pub async fn echo_at(addr: &str, name: &str) -> Upstream {
        let n = name.to_string();
        Self::start_at(addr, name, Proto::Auto, None, echo_handler(n)).await
    }

    async fn start_at(
        bind: &str,
        name: &str,
        proto: Proto,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Handler,
    ) -> Upstream {
        let listener = TcpListener::bind(bind).await.expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                c.fetch_add(1, Ordering::Relaxed);
                let handler = handler.clone();
                let r = r.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        r.fetch_add(1, Ordering::Relaxed);
                        let fut = handler(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let mut b = auto::Builder::new(TokioExecutor::new());
                    if proto == Proto::H2 {
                        b = b.http2_only();
                    }
                    match tls {
                        Some(cfg) => {
                            let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await
                            else {
                                return;
                            };
                            let _ = b.serve_connection_with_upgrades(TokioIo::new(s), svc).await;
                        }
                        None => {
                            let _ = b
                                .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                                .await;
                        }
                    }
                });
            }
        });
        Upstream {
            addr,
            name: name.to_string(),
            connections,
            requests,
            task,
        }
    }
}

/// A server that reads each request and then aborts the connection with a reset.
pub async fn reset_server() -> (SocketAddr, JoinHandle<()>) {
    misbehaving_server(|mut s| async move {
        let mut buf = [0u8; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
        let _ = s.set_zero_linger();
    })
    .await
}

/// A server that reads each request and never answers (the connection stays open).
pub async fn hanging_server() -> (SocketAddr, JoinHandle<()>) {
    misbehaving_server(|mut s| async move {
        let mut buf = [0u8; 1024];
        let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
        std::future::pending::<()>().await;
    })
    .await
}

async fn misbehaving_server<F, Fut>(each: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(each(s));
        }
    });
    (addr, task)
}

pub fn echo_handler(name: String) -> Handler {
    Arc::new(move |req: Request<Incoming>| {
        let name = name.clone();
        Box::pin(async move {
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Value::String(v.to_str().unwrap_or("?").to_string()),
                    )
                })
                .collect();
            let out = serde_json::json!({
                "upstream": name,
                "method": req.method().as_str(),
                "path": req.uri().path(),
                "query": req.uri().query(),
                "target": req.uri().to_string(),
                "version": format!("{:?}", req.version()),
                "headers": headers,
            });
            let mut resp = Response::new(full(out.to_string()));
            resp.headers_mut()
                .insert("x-upstream", name.parse().expect("header"));
            resp
        })
    })
}

/// A handler from a plain async function.
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |req| Box::pin(f(req)))
}

// ---------------------------------------------------------------- the gateway process

/// Keys added to the harness's `[server]` and `[admin]` tables, and an open-file limit (soft and
/// hard) to start the gateway under, as a small host would have.
#[derive(Default)]
pub struct Settings {
    pub server: String,
    pub admin: String,
    pub nofile: Option<u64>,
}

impl Settings {
    pub fn server(keys: &str) -> Settings {
        Settings {
            server: keys.to_string(),
            ..Settings::default()
        }
    }
}

pub struct Gateway {
    /// The first listener's port.
    pub port: u16,
    /// Every listener's port, in config order.
    pub listeners: Vec<u16>,
    pub admin: u16,
    pub dir: PathBuf,
    pub config_path: PathBuf,
    child: Child,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Gateway {
    /// The config the harness writes: one plain listener, the admin (both on port 0: the gateway
    /// picks free ports and reports them), JSON access logs, then `extra`.
    pub fn config(extra: &str) -> String {
        Self::config_with(&Settings::default(), extra)
    }

    /// The same, with more keys in `[server]` and `[admin]`.
    pub fn config_with(settings: &Settings, extra: &str) -> String {
        format!(
            r#"[server]
workers = 2
shutdown_timeout = "10s"
plugin_cache = "{cache}"
{server}

[[listeners]]
address = "127.0.0.1:0"

[admin]
address = "127.0.0.1:0"
{admin_keys}

[log]
level = "info"
format = "json"

{extra}
"#,
            cache = plugin_cache().display(),
            server = settings.server,
            admin_keys = settings.admin,
        )
    }

    /// Starts the gateway with extra `[server]` / `[admin]` keys.
    pub async fn start_with(settings: &Settings, extra: &str) -> Gateway {
        Self::spawn(&Self::config_with(settings, extra), settings.nofile).await
    }

    pub async fn start(extra: &str) -> Gateway {
        Self::start_text(&Self::config(extra)).await
    }

    /// Starts the binary on a complete config text.
    pub async fn start_text(text: &str) -> Gateway {
        Self::spawn(text, None).await
    }

    async fn spawn(text: &str, nofile: Option<u64>) -> Gateway {
        plugins_built();
        // Load tests hold a thousand connections on each side in this process.
        static FDS: std::sync::Once = std::sync::Once::new();
        FDS.call_once(|| {
            let _ = rlimit::increase_nofile_limit(u64::MAX);
        });
        let dir = temp_dir("gw");
        let config_path = dir.join("gateway.toml");
        std::fs::write(&config_path, text).expect("write config");
        let log = std::fs::File::create(dir.join("gateway.log")).expect("log file");
        let mut cmd = match nofile {
            // prlimit execs the gateway: the child's pid is the gateway's.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_wasmgate"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_wasmgate")),
        };
        let child = cmd
            .arg("run")
            .arg("-c")
            .arg(&config_path)
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn wasmgate");
        let mut gw = Gateway {
            port: 0,
            listeners: Vec::new(),
            admin: 0,
            dir,
            config_path,
            child,
        };
        gw.admin = gw.reported_admin_port().await;
        gw.wait_ready().await;
        gw
    }

    /// The admin's port, from the gateway's "admin listening" log line.
    async fn reported_admin_port(&mut self) -> u16 {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            // JSON lines, or text ones (`... admin listening address=127.0.0.1:9901`).
            let port = self
                .log()
                .lines()
                .filter(|l| l.contains("admin listening"))
                .find_map(|l| match serde_json::from_str::<Value>(l) {
                    Ok(v) => v["address"].as_str().map(str::to_string),
                    Err(_) => l
                        .split_whitespace()
                        .find_map(|w| w.strip_prefix("address="))
                        .map(str::to_string),
                })
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .map(|a| a.port());
            if let Some(p) = port {
                return p;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("gateway exited ({status}); log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "the gateway never said where its admin listens; log:\n{}",
            self.log()
        );
    }

    /// Waits for `/readyz`, and takes the listeners' ports from it.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(r) = get(&self.admin_url("/readyz")).await
                && r.status == StatusCode::OK
            {
                self.listeners = r.json()["listeners"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str()?.parse::<SocketAddr>().ok())
                            .map(|a| a.port())
                            .collect()
                    })
                    .unwrap_or_default();
                self.port = self.listeners.first().copied().unwrap_or(0);
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("gateway did not become ready; log:\n{}", self.log());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    /// A scrape of the admin's `/metrics`.
    pub async fn metrics(&self) -> String {
        get(&self.admin_url("/metrics"))
            .await
            .expect("metrics")
            .text()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("gateway.log")).unwrap_or_default()
    }

    /// Waits until the log holds `needle` (the log is written off the request path).
    pub async fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the log never said {needle:?}; log:\n{}", self.log());
    }

    /// Resident memory of the gateway process, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit and returns whether it exited 0.
    pub async fn wait_exit(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "gateway did not exit within {within:?}; log:\n{}",
            self.log()
        );
    }

    /// Replaces the config file (same listener and admin) by writing a new file and renaming it
    /// over the old one, as editors and deploy tools do.
    /// Replaces the config file with the harness's config and `extra` (same listener and admin).
    pub fn write_config(&self, extra: &str) {
        self.write_config_text(&Self::config(extra));
    }

    pub fn write_config_text(&self, text: &str) {
        let tmp = self.dir.join("gateway.toml.tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &self.config_path).expect("rename");
    }

    pub async fn generation(&self) -> u64 {
        let r = get(&self.admin_url("/readyz")).await.expect("readyz");
        r.json()["generation"].as_u64().unwrap_or(0)
    }

    /// Waits until the config generation reaches `n`.
    pub async fn wait_generation(&self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.generation().await >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("generation {n} not reached; log:\n{}", self.log());
    }
}

// ---------------------------------------------------------------- plugin files

/// Copies a built plugin over `dest` the way deploy tools do: write aside, then rename.
pub fn swap_in(src: &str, dest: &std::path::Path) {
    let tmp = dest.with_extension("tmp");
    std::fs::copy(plugin(src), &tmp).expect("copy plugin");
    std::fs::rename(&tmp, dest).expect("rename plugin");
}

/// A gateway whose one route runs plugin `policy` from a file of its own (`trap` to start
/// with) in front of `up`, so tests can swap the file. v1 (trap) and v2 (headers) accept the
/// same config (`{}`): v1 marks requests with `x-trap-passed`, v2 does not.
pub async fn policy_gateway(
    tag: &str,
    up: &Upstream,
) -> (Gateway, std::path::PathBuf, std::path::PathBuf) {
    let dir = temp_dir(tag);
    let file = dir.join("policy.wasm");
    swap_in("trap", &file);
    let gw = Gateway::start(
        &(upstream_block(&up.name, &[up], "")
            + &format!("[plugins.policy]\nfile = \"{}\"\n", file.display())
            + &format!(
                "[[routes]]\nname = \"r\"\nupstream = \"{}\"\nplugins = [\"policy\"]\n",
                up.name
            )),
    )
    .await;
    (gw, dir, file)
}

// ---------------------------------------------------------------- redis

/// A real `redis-server` on a free port, with nothing persisted; stopped on drop.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub async fn start() -> Redis {
        let mut r = Redis::not_started();
        r.restart().await;
        r
    }

    /// A port for a Redis that is not running yet (`restart` starts it).
    pub fn not_started() -> Redis {
        Redis {
            port: free_port(),
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port and waits for PONG.
    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (tests/run.sh installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// How many keys the server holds (0 when it cannot be asked).
    pub async fn dbsize(&self) -> u64 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return 0;
        };
        let mut buf = [0u8; 32];
        if s.write_all(b"DBSIZE\r\n").await.is_err() {
            return 0;
        }
        let n = s.read(&mut buf).await.unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or(0)
    }

    async fn ping(&self) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").await.is_ok()
            && s.read_exact(&mut buf).await.is_ok()
            && &buf == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------- clients

#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub fn client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> Client<HttpConnector, Body> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub async fn send_with(
    c: &Client<HttpConnector, Body>,
    req: Request<Body>,
) -> Result<Resp, BoxError> {
    let resp = c.request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Resp {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body,
    })
}

pub async fn send(req: Request<Body>) -> Result<Resp, BoxError> {
    send_with(&client(), req).await
}

pub async fn get(url: &str) -> Result<Resp, BoxError> {
    send(Request::get(url).body(full(""))?).await
}

/// A GET with extra headers.
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(full("")).expect("request"))
        .await
        .expect("response")
}

/// Runs curl and returns (exit ok, stdout).
pub fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    if !out.status.success() {
        eprintln!("curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A config block for an upstream named `name` over the given servers.
/// One upstream with one server, and a catch-all route to it.
pub fn route_to(up: &Upstream) -> String {
    format!(
        "{}[[routes]]\nupstream = \"{}\"\n",
        upstream_block(&up.name, &[up], ""),
        up.name
    )
}

pub fn upstream_block(name: &str, servers: &[&Upstream], extra: &str) -> String {
    let targets: Vec<String> = servers.iter().map(|s| format!("\"{}\"", s.addr)).collect();
    format!(
        "[upstreams.{name}]\ntargets = [{}]\n{extra}\n",
        targets.join(", ")
    )
}

// ---------------------------------------------------------------- TLS material

/// A test CA and a certificate it signed for `localhost` and 127.0.0.1, written as PEM files.
pub struct TestPki {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_config: Arc<rustls::ServerConfig>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl TestPki {
    pub fn new() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = temp_dir("pki");
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: with rcgen's shared default name OpenSSL takes the leaf as self-signed.
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wasmgate test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let cert = params.signed_by(&key, &issuer).expect("cert");
        let pki = TestPki {
            issuer,
            dir: dir.clone(),
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            server_config: Arc::new(
                rustls::ServerConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .expect("versions")
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
                        .expect("key der"),
                )
                .map(|mut c| {
                    c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
                    c
                })
                .expect("server config"),
            ),
        };
        std::fs::write(&pki.ca, ca_cert.pem()).expect("write ca");
        std::fs::write(&pki.cert, cert.pem()).expect("write cert");
        std::fs::write(&pki.key, key.serialize_pem()).expect("write key");
        pki
    }

    /// Another certificate from this CA, for `names` (server) or for a client (`names` empty),
    /// with common name `cn`: its (cert, key) PEM files, named after `cn`.
    pub fn issue(&self, names: &[&str], cn: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        if names.is_empty() {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.issuer).expect("cert");
        let file = cn.replace(['*', ' '], "_");
        let (c, k) = (
            self.dir.join(format!("{file}.pem")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }

    /// The common name of the certificate a TLS server presents for `sni` (verified against
    /// this CA).
    pub async fn presented(&self, addr: SocketAddr, sni: &str) -> String {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut std::fs::read(&self.ca).expect("ca").as_slice()) {
            roots.add(c.expect("ca pem")).expect("root");
        }
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls::pki_types::ServerName::try_from(sni.to_string()).expect("name");
        let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
            .connect(name, tcp)
            .await
            .unwrap_or_else(|e| panic!("TLS for {sni}: {e}"));
        let leaf = tls.get_ref().1.peer_certificates().expect("certs")[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("x509");
        cert.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// The line of `family` in a metrics scrape that carries every one of `labels` (`name="value"`).
pub fn metric_line<'a>(scrape: &'a str, family: &str, labels: &[&str]) -> Option<&'a str> {
    scrape
        .lines()
        .find(|l| l.starts_with(family) && labels.iter().all(|label| l.contains(label)))
}

// ---------------------------------------------------------------- DNS

/// Records by name: (priority, weight, port, target) of each SRV record.
type SrvRecords = Arc<std::sync::Mutex<HashMap<String, Vec<(u16, u16, u16, String)>>>>;
type IpRecords = Arc<std::sync::Mutex<HashMap<String, Vec<std::net::IpAddr>>>>;

/// An authoritative DNS server on a free UDP port for names the test sets: A/AAAA from
/// `set_ips`, SRV from `set_srv`, 1-second TTLs, NXDOMAIN otherwise.
pub struct DnsServer {
    pub addr: SocketAddr,
    ips: IpRecords,
    srv: SrvRecords,
    task: JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl DnsServer {
    pub async fn start() -> DnsServer {
        use hickory_resolver::proto::op::{Message, MessageType, ResponseCode};
        use hickory_resolver::proto::rr::rdata::{A, AAAA, SRV};
        use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};

        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind dns");
        let addr = socket.local_addr().expect("addr");
        let ips: IpRecords = Arc::default();
        let srv: SrvRecords = Arc::default();
        let (i, s) = (ips.clone(), srv.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply = Message::new();
                reply
                    .set_id(query.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(query.op_code())
                    .set_recursion_desired(query.recursion_desired())
                    .set_recursion_available(true)
                    .set_authoritative(true);
                let mut found = false;
                for q in query.queries() {
                    reply.add_query(q.clone());
                    let name = q.name().to_utf8().trim_end_matches('.').to_lowercase();
                    let records: Vec<Record> = match q.query_type() {
                        RecordType::A | RecordType::AAAA => {
                            let known = i.lock().expect("lock").get(&name).cloned();
                            found |= known.is_some();
                            known
                                .unwrap_or_default()
                                .into_iter()
                                .filter_map(|ip| match (ip, q.query_type()) {
                                    (std::net::IpAddr::V4(v4), RecordType::A) => {
                                        Some(RData::A(A(v4)))
                                    }
                                    (std::net::IpAddr::V6(v6), RecordType::AAAA) => {
                                        Some(RData::AAAA(AAAA(v6)))
                                    }
                                    _ => None,
                                })
                                .map(|r| Record::from_rdata(q.name().clone(), 1, r))
                                .collect()
                        }
                        RecordType::SRV => {
                            let known = s.lock().expect("lock").get(&name).cloned();
                            found |= known.is_some();
                            known
                                .unwrap_or_default()
                                .into_iter()
                                .filter_map(|(p, w, port, target)| {
                                    let t = Name::from_ascii(format!("{target}.")).ok()?;
                                    Some(Record::from_rdata(
                                        q.name().clone(),
                                        1,
                                        RData::SRV(SRV::new(p, w, port, t)),
                                    ))
                                })
                                .collect()
                        }
                        _ => Vec::new(),
                    };
                    for r in records {
                        reply.add_answer(r);
                    }
                }
                if !found {
                    reply.set_response_code(ResponseCode::NXDomain);
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        DnsServer {
            addr,
            ips,
            srv,
            task,
        }
    }

    pub fn set_ips(&self, name: &str, ips: &[&str]) {
        let ips = ips.iter().map(|s| s.parse().expect("ip")).collect();
        self.ips.lock().expect("lock").insert(name.to_string(), ips);
    }

    pub fn set_srv(&self, name: &str, records: &[(u16, u16, u16, &str)]) {
        let records = records
            .iter()
            .map(|(p, w, port, t)| (*p, *w, *port, t.to_string()))
            .collect();
        self.srv
            .lock()
            .expect("lock")
            .insert(name.to_string(), records);
    }
}

// ---------------------------------------------------------------- etcd

/// A one-member etcd (Debian's `etcd-server`) on free ports with its data in a temp folder,
/// driven through its JSON gateway.
pub struct EtcdServer {
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl EtcdServer {
    pub async fn start() -> EtcdServer {
        let (client, peer) = (free_port(), free_port());
        let dir = temp_dir("etcd");
        let url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("test={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is installed (tests/run.sh installs etcd-server)");
        let etcd = EtcdServer { url, child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = get(&format!("{}/health", etcd.url)).await
                && r.status == 200
                && r.text().contains("true")
            {
                return etcd;
            }
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn call(&self, path: &str, body: Value) -> Value {
        let r = send(
            Request::post(format!("{}{path}", self.url))
                .header("content-type", "application/json")
                .body(full(body.to_string()))
                .expect("request"),
        )
        .await
        .expect("etcd call");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.json()
    }

    /// A lease of `ttl` seconds; its id.
    pub async fn grant(&self, ttl: u64) -> String {
        let v = self
            .call("/v3/lease/grant", serde_json::json!({ "TTL": ttl }))
            .await;
        match &v["ID"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }

    pub async fn keep_alive(&self, lease: &str) {
        self.call("/v3/lease/keepalive", serde_json::json!({ "ID": lease }))
            .await;
    }

    pub async fn put(&self, key: &str, value: &str, lease: Option<&str>) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut body = serde_json::json!({ "key": b64.encode(key), "value": b64.encode(value) });
        if let Some(l) = lease {
            body["lease"] = Value::from(l);
        }
        self.call("/v3/kv/put", body).await;
    }

    pub async fn delete(&self, key: &str) {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        self.call(
            "/v3/kv/deleterange",
            serde_json::json!({ "key": b64.encode(key) }),
        )
        .await;
    }
}
