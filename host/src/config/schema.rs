//! The `gateway.toml` file format. Every table refuses unknown keys, so a typo is an error with its
//! line and column rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::types::{
    ByteSize, Cidr, HeaderNameStr, HostPattern, MethodName, PathPattern, PathPrefix, TargetAddr,
    WorkerCount,
};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    /// Process-wide settings: workers, timeouts, limits.
    pub server: Server,
    #[serde(default = "default_listeners")]
    #[schemars(with = "Vec<Listener>")]
    /// Where clients connect: one table per address (default: `127.0.0.1:8080`, plain).
    pub listeners: Vec<Spanned<Listener>>,
    #[serde(default)]
    /// The admin listener: health, metrics, the dashboard, read endpoints, reload.
    pub admin: Admin,
    #[serde(default)]
    /// The gateway's log and the access log.
    pub log: Log,
    #[serde(default)]
    /// Prometheus metrics on the admin's `/metrics`.
    pub metrics: Metrics,
    /// OpenTelemetry traces, exported over OTLP/HTTP; none without this table.
    #[schemars(with = "Option<Tracing>")]
    pub tracing: Option<Spanned<Tracing>>,
    /// A small echo server started inside the gateway process, so the example config answers
    /// without any other service running.
    pub demo_backend: Option<DemoBackend>,
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, Upstream>")]
    /// The services requests go to, by name: their targets, balancing, pools and resilience.
    pub upstreams: BTreeMap<String, Spanned<Upstream>>,
    #[serde(default)]
    #[schemars(with = "Vec<Route>")]
    /// How requests are matched, in priority then file order, and where they go.
    pub routes: Vec<Spanned<Route>>,
    /// The key-value store behind the plugins' `kv` capability.
    #[serde(default)]
    pub store: StoreConfig,
    /// Plugin definitions: a `.wasm` file and its sandbox; routes list them by name.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, PluginDef>")]
    pub plugins: BTreeMap<String, Spanned<PluginDef>>,
    /// An etcd cluster that upstreams may find their targets in (`etcd_prefix`), and that may
    /// hold routes, upstreams and plugins (`config_prefix`). Read at start.
    #[schemars(with = "Option<EtcdConfig>")]
    pub etcd: Option<Spanned<EtcdConfig>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// `http://host:port` of each member, tried in turn.
    #[schemars(example = serde_json::json!(["http://127.0.0.1:2379"]))]
    pub endpoints: Vec<String>,
    /// How often registrations are read again.
    #[serde(default = "default_etcd_poll", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub poll_interval: Duration,
    /// Keep routes, upstreams and plugins under this prefix too (`/wasmgate/`): one key per
    /// object, `<prefix>routes/<name>`, followed live.
    #[schemars(example = &"/wasmgate/")]
    pub config_prefix: Option<String>,
}

fn default_etcd_poll() -> Duration {
    Duration::from_millis(500)
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Worker threads; defaults to the number of cores.
    #[schemars(example = 4)]
    pub workers: Option<WorkerCount>,
    /// On SIGTERM, how long requests in flight may take to finish before their connections
    /// are closed.
    #[serde(default = "default_shutdown_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a complete request head, counted from accept (or from
    /// its first byte on a kept-alive connection); 408 after.
    #[serde(default = "default_header_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight (HTTP/1.1 keep-alive and
    /// HTTP/2 alike).
    #[serde(default = "default_idle_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub idle_timeout: Duration,
    /// Longest pause between two reads of a client's request body; 408 after.
    #[serde(default = "default_body_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub body_read_timeout: Duration,
    /// HTTP/2 keep-alive: a PING after this long without frames; no answer within it closes the
    /// connection.
    #[serde(default = "default_ping_interval", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub http2_ping_interval: Duration,
    /// Largest request head (request line and headers); 431 above.
    #[serde(default = "default_max_header_size")]
    pub max_header_size: ByteSize,
    /// Largest request body on every route that does not set its own `max_body`; 413 above.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// Client connections the whole process holds at once (more wait in the backlog). By
    /// default half the open-file limit, since each may need an upstream connection too.
    #[schemars(example = 20000)]
    pub max_connections: Option<usize>,
    /// Serve a config that has no routes (every request then gets 404). Off, such a config is
    /// refused, since it is almost always a mistake (an empty or truncated file).
    #[serde(default)]
    pub allow_empty: bool,
    /// Watch the config file and the plugin files, and reload when one changes.
    #[serde(default = "yes")]
    pub watch_config: bool,
    /// Where compiled plugins are cached; `""` turns the cache off. Defaults to
    /// `$XDG_CACHE_HOME/wasmgate/plugins` (or `~/.cache/...`).
    #[schemars(example = &"/var/cache/wasmgate")]
    pub plugin_cache: Option<PathBuf>,
    /// The plugin cache's size cap: past it, the entries used longest ago are removed.
    #[serde(default = "default_plugin_cache_max")]
    pub plugin_cache_max: ByteSize,
    /// Proxies (addresses or CIDR ranges) whose forwarding header is believed: a request from
    /// one of them is from the client that header names.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
    /// The header trusted proxies name the client in.
    #[serde(default)]
    pub client_ip_header: ClientIpHeader,
    /// Name servers for upstream targets written as names (`"10.0.0.2:53"`); the system's
    /// (`/etc/resolv.conf`) when empty. Read at start.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub dns_servers: Vec<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    #[default]
    XForwardedFor,
    Forwarded,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            workers: None,
            shutdown_timeout: default_shutdown_timeout(),
            header_read_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            body_read_timeout: default_body_timeout(),
            http2_ping_interval: default_ping_interval(),
            max_header_size: default_max_header_size(),
            max_body: default_max_body(),
            max_connections: None,
            allow_empty: false,
            watch_config: true,
            plugin_cache: None,
            plugin_cache_max: default_plugin_cache_max(),
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
            dns_servers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    #[serde(with = "super::types::socket_addr")]
    #[schemars(with = "String")]
    /// IP address and port to listen on (port 0: any free port).
    #[schemars(example = &"0.0.0.0:443")]
    pub address: SocketAddr,
    /// Present means TLS on this listener.
    pub tls: Option<ServerTls>,
    /// Offer HTTP/2 (ALPN `h2` on TLS, prior knowledge on plain listeners).
    #[serde(default = "yes")]
    pub http2: bool,
    /// Connections open at once on this listener; more wait in the kernel's backlog. The whole
    /// process is also capped by its open-file limit, so it never runs out of descriptors.
    #[schemars(with = "Option<usize>")]
    #[schemars(example = 10000)]
    pub max_connections: Option<Spanned<usize>>,
    /// Connections start with a PROXY protocol header (v1 or v2) from a TCP load balancer; one
    /// without it is closed.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// A plain listener that answers every request with a 308 to the same URL on `https`, at
    /// the first TLS listener's port.
    #[serde(default)]
    pub redirect_https: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// The certificate for clients whose SNI names none of `certs` (or send no SNI).
    #[schemars(with = "PathBuf")]
    #[schemars(example = &"certs/gateway.pem")]
    pub cert: Spanned<PathBuf>,
    #[schemars(with = "PathBuf")]
    /// The private key (PEM) of `cert`.
    #[schemars(example = &"certs/gateway.key")]
    pub key: Spanned<PathBuf>,
    /// More certificates, each chosen when the client's SNI is one of the names it is valid
    /// for (its DNS subject alternative names, wildcards included).
    #[serde(default)]
    pub certs: Vec<CertKey>,
    /// Ask clients for a certificate signed by a CA in this PEM file (mutual TLS); its subject
    /// is given to plugins as the request context's `client-cert-subject`.
    #[schemars(with = "Option<PathBuf>")]
    #[schemars(example = &"certs/clients-ca.pem")]
    pub client_ca: Option<Spanned<PathBuf>>,
    /// `required` (the default with `client_ca`): a client without a valid certificate fails
    /// the handshake. `optional`: it is let in without a subject.
    #[serde(default)]
    pub client_auth: ClientAuth,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertKey {
    #[schemars(with = "PathBuf")]
    /// A certificate chain (PEM).
    #[schemars(example = &"certs/api.example.com.pem")]
    pub cert: Spanned<PathBuf>,
    #[schemars(with = "PathBuf")]
    /// Its private key (PEM).
    #[schemars(example = &"certs/api.example.com.key")]
    pub key: Spanned<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    #[serde(default = "default_admin_address", with = "super::types::socket_addr")]
    #[schemars(with = "String")]
    /// Address of the admin listener (keep it on loopback, or set `token`).
    pub address: SocketAddr,
    #[serde(default = "yes")]
    /// Serve the admin listener at all.
    pub enabled: bool,
    /// Bearer token every admin call but `/healthz` and `/readyz` must carry
    /// (`Authorization: Bearer ...`). Required when the admin listens beyond loopback.
    #[schemars(example = &"${file:/run/secrets/admin-token}")]
    pub token: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: default_admin_address(),
            enabled: true,
            token: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// A `tracing` filter such as `info` or `wasmgate=debug`; `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
    #[serde(default)]
    /// `text`, `json`, or `auto`: text on a terminal, JSON otherwise.
    pub format: LogFormat,
    /// One line per request with route, upstream, status, latency and bytes.
    #[serde(default = "yes")]
    pub access: bool,
    /// The access log's fields, in the order of the full list (default: all of them).
    #[schemars(with = "Option<Vec<String>>")]
    #[schemars(example = serde_json::json!(["time", "status", "path", "route", "duration_ms"]))]
    pub access_fields: Option<Spanned<Vec<String>>>,
    /// Write the access log to this file instead of stdout; SIGUSR1 reopens it (logrotate).
    #[schemars(example = &"/var/log/wasmgate/access.log")]
    pub access_file: Option<String>,
    /// Share of requests answered below 400 that get an access-log line (errors always do).
    #[serde(default = "all")]
    pub access_sample: f64,
}

fn all() -> f64 {
    1.0
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: default_log_level(),
            format: LogFormat::Auto,
            access: true,
            access_fields: None,
            access_file: None,
            access_sample: 1.0,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Count every request in the admin's `/metrics` (by route, method, status class,
    /// upstream). Off, only the rarer families (plugin failures, retries, reloads) are kept.
    #[serde(default = "yes")]
    pub enabled: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { enabled: true }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tracing {
    /// The collector's OTLP/HTTP traces URL, such as `http://127.0.0.1:4318/v1/traces`.
    #[schemars(example = &"http://127.0.0.1:4318/v1/traces")]
    pub endpoint: String,
    /// Share of the traces that start here (no sampled caller) that are recorded.
    #[serde(default = "all")]
    pub sample_ratio: f64,
    /// Follow the caller's `traceparent` sampled flag when there is one.
    #[serde(default = "yes")]
    pub parent_based: bool,
    /// `service.name` of the exported spans.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Extra headers on every export request (an API key, a tenant).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Spans waiting for export; beyond this they are dropped and counted, never waited for.
    #[serde(default = "default_trace_queue")]
    pub queue_size: usize,
    /// Most spans in one export request.
    #[serde(default = "default_trace_batch")]
    pub batch_size: usize,
    /// Longest wait before a batch that is not full is sent.
    #[serde(default = "default_trace_interval", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub export_interval: Duration,
    /// Longest an export request may take before it is given up (its spans are dropped).
    #[serde(default = "default_trace_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub export_timeout: Duration,
}

fn default_service_name() -> String {
    "wasmgate".into()
}
fn default_trace_queue() -> usize {
    4096
}
fn default_trace_batch() -> usize {
    512
}
fn default_trace_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_trace_timeout() -> Duration {
    Duration::from_secs(10)
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Text on a terminal, JSON otherwise (a pipe, a file, a log collector).
    #[default]
    Auto,
    Text,
    Json,
}

impl LogFormat {
    pub fn json(self) -> bool {
        use std::io::IsTerminal;
        match self {
            LogFormat::Json => true,
            LogFormat::Text => false,
            LogFormat::Auto => !std::io::stdout().is_terminal(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DemoBackend {
    #[serde(with = "super::types::socket_addr")]
    #[schemars(with = "String")]
    /// Address the demo echo server listens on.
    #[schemars(example = &"127.0.0.1:9080")]
    pub address: SocketAddr,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    #[schemars(with = "Vec<Target>")]
    /// The servers, `host:port` (a name is resolved, see `dns_interval`).
    #[schemars(example = serde_json::json!(["10.0.0.5:8080", {"address": "10.0.0.6:8080", "weight": 3}]))]
    pub targets: Vec<Spanned<Target>>,
    #[schemars(with = "Option<Balance>")]
    /// How a target is picked: `round_robin`, `weighted` (by `weight`), `least_conn`, or `hash` (by
    /// `hash_on`).
    #[schemars(example = &"least_conn")]
    pub balance: Option<Spanned<Balance>>,
    /// With `balance = "hash"`: what keeps a client on one target.
    #[schemars(example = serde_json::json!({"header": "x-user"}))]
    pub hash_on: Option<HashOn>,
    #[serde(default = "default_connect_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    /// Time allowed to open a connection to a target.
    pub connect_timeout: Duration,
    /// Time allowed for the upstream's response head, after the request was sent.
    #[serde(default = "default_request_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub request_timeout: Duration,
    /// Longest pause between two reads of the response body; past it the response is cut.
    #[serde(default = "default_read_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub read_timeout: Duration,
    /// Speak HTTP/2 to the targets (prior knowledge on plain TCP, ALPN with TLS).
    #[serde(default)]
    pub http2: bool,
    /// Present means TLS to the targets.
    pub tls: Option<UpstreamTls>,
    /// Send the client's `Host` rather than the target's address.
    #[serde(default = "yes")]
    pub preserve_host: bool,
    #[serde(default)]
    /// Passive health (failures take a target out of rotation) and active checks.
    pub health: Health,
    #[serde(default)]
    /// Kept-alive connections to the targets.
    pub pool: Pool,
    /// Resolve targets written as names this often (default: when their DNS records expire).
    #[serde(default, with = "super::types::opt_duration")]
    #[schemars(with = "Option<super::types::DurationText>", example = &"30s")]
    pub dns_interval: Option<Duration>,
    /// Take targets from this SRV record (`_http._tcp.api.internal`), besides `targets`.
    #[schemars(example = &"_http._tcp.orders.internal")]
    pub srv: Option<String>,
    /// Take targets from the keys under this etcd prefix (`/services/api/`): each value is
    /// `"host:port"` or `{"address": "host:port", "weight": N}`, usually put with a lease.
    #[schemars(example = &"/services/orders/")]
    pub etcd_prefix: Option<String>,
    /// Retry failed requests (to another target when there is one).
    #[schemars(with = "Option<Retry>")]
    pub retry: Option<Spanned<Retry>>,
    /// The upstream's circuit breaker (each target has its own, set in `health`).
    #[schemars(with = "Option<Breaker>")]
    pub breaker: Option<Spanned<Breaker>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Tries in all, the first one included. A request no target took (refused connection)
    /// goes to the next target without counting.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Time for each try's response head; `request_timeout` bounds them all together.
    #[serde(default, with = "super::types::opt_duration")]
    #[schemars(with = "Option<super::types::DurationText>", example = &"2s")]
    pub per_try_timeout: Option<Duration>,
    /// Response statuses that are tried again.
    #[serde(default = "default_retry_statuses")]
    pub statuses: Vec<u16>,
    /// Retries may add at most this share of the upstream's requests (0.2 = 20% more load)...
    #[serde(default = "default_budget")]
    pub budget: f64,
    /// ...plus this many in a burst.
    #[serde(default = "default_budget_reserve")]
    pub budget_reserve: u32,
    /// A request body up to this size is kept to send again; a larger one is not retried.
    #[serde(default = "default_retry_body")]
    pub max_body: ByteSize,
    /// Wait before a retry: this, doubled at each retry, with jitter.
    #[serde(default = "default_backoff", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub backoff: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Breaker {
    /// Consecutive failed tries (5xx, timeouts, resets, connection errors) that open it; 0: never.
    #[serde(default = "default_breaker_failures")]
    pub failures: u32,
    /// Or: this share of failures among at least `min_requests` in `window`.
    #[schemars(example = 0.5)]
    pub failure_ratio: Option<f64>,
    #[serde(default = "default_breaker_window", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    /// The span `failure_ratio` is counted over.
    pub window: Duration,
    #[serde(default = "default_breaker_min_requests")]
    /// Requests in `window` before `failure_ratio` may open the breaker.
    pub min_requests: u32,
    /// How long an open breaker refuses requests before it lets probes through.
    #[serde(default = "default_open_for", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub open_for: Duration,
    /// Probe requests when half-open; as many successes close it.
    #[serde(default = "default_probes")]
    pub probes: u32,
    /// The answer while the upstream's breaker is open (or no target is available), instead of
    /// a 503 problem with `Retry-After`...
    #[schemars(with = "Option<FallbackAnswer>")]
    pub fallback: Option<Spanned<FallbackAnswer>>,
    /// ...or another upstream that answers instead.
    #[schemars(with = "Option<String>")]
    #[schemars(example = &"orders-static")]
    pub fallback_upstream: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackAnswer {
    #[serde(default = "default_fallback_status")]
    /// Its status.
    pub status: u16,
    #[serde(default)]
    /// Its headers.
    #[schemars(example = serde_json::json!({"content-type": "application/json"}))]
    pub headers: BTreeMap<HeaderNameStr, String>,
    #[serde(default)]
    /// Its body.
    #[schemars(example = "{\"items\": []}")]
    pub body: String,
}

/// A target is written `"host:port"` or `{ address = "host:port", weight = 3 }`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    pub address: TargetAddr,
    pub weight: u32,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    Weighted,
    LeastConn,
    Hash,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum HashOn {
    ClientIp,
    Header(HeaderNameStr),
    Cookie(String),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM file of the CA(s) that sign the targets' certificates; the public roots otherwise.
    #[schemars(with = "Option<PathBuf>")]
    #[schemars(example = &"certs/internal-ca.pem")]
    pub ca: Option<Spanned<PathBuf>>,
    /// Name to verify the targets' certificates against; the target's host otherwise.
    #[schemars(example = &"orders.internal")]
    pub server_name: Option<String>,
    /// A client certificate (PEM) and its key, for targets that ask for one (mutual TLS).
    #[schemars(with = "Option<PathBuf>")]
    #[schemars(example = &"certs/gateway-client.pem")]
    pub cert: Option<Spanned<PathBuf>>,
    #[schemars(with = "Option<PathBuf>")]
    /// The private key (PEM) of `cert`.
    #[schemars(example = &"certs/gateway-client.key")]
    pub key: Option<Spanned<PathBuf>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// Consecutive failed connections that take a target out of rotation.
    #[serde(default = "default_max_fails")]
    pub max_fails: u32,
    /// How long a failed target stays out before it is tried again.
    #[serde(default = "default_fail_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub fail_timeout: Duration,
    /// Active checks: `GET path` on every target each interval; a non-2xx/3xx takes it out.
    pub check: Option<HealthCheck>,
    /// Largest share of targets failures may take out at once (at least one may go).
    #[serde(default = "default_max_ejected")]
    pub max_ejected_percent: u32,
    /// Probe requests a target gets when its `fail_timeout` is over; as many successes bring
    /// it back, one failure takes it out again.
    #[serde(default = "default_health_probes")]
    pub probes: u32,
    /// What counts as a failed request to a target: `connect` (refused, unreachable),
    /// `timeout`, `reset` (closed before the response head), `5xx`.
    #[serde(default = "default_fail_on")]
    pub fail_on: Vec<FailOn>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
pub enum FailOn {
    #[serde(rename = "connect")]
    Connect,
    #[serde(rename = "timeout")]
    Timeout,
    #[serde(rename = "reset")]
    Reset,
    #[serde(rename = "5xx")]
    ServerError,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            max_fails: default_max_fails(),
            fail_timeout: default_fail_timeout(),
            check: None,
            max_ejected_percent: default_max_ejected(),
            probes: default_health_probes(),
            fail_on: default_fail_on(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The path each check requests (`GET`).
    #[schemars(example = &"/healthz")]
    pub path: PathPrefix,
    #[serde(default = "default_check_interval", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    /// Time between two checks of a target.
    pub interval: Duration,
    #[serde(default = "default_check_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    /// A check not answered within this failed.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    #[serde(default = "default_pool_idle", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    /// An idle pooled connection is closed after this.
    pub idle_timeout: Duration,
    #[serde(default = "default_pool_max_idle")]
    /// Idle connections kept per target.
    pub max_idle_per_target: usize,
}

impl Default for Pool {
    fn default() -> Self {
        Pool {
            idle_timeout: default_pool_idle(),
            max_idle_per_target: default_pool_max_idle(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Shown in logs; defaults to `route-N` (N counts from 1 in file order).
    #[schemars(with = "Option<String>")]
    #[schemars(example = &"orders-api")]
    pub name: Option<Spanned<String>>,
    /// Exact names or `*.example.com`; empty matches any host.
    #[serde(default)]
    pub hosts: Vec<HostPattern>,
    /// Exact path, or a pattern with `{param}` segments.
    #[schemars(with = "Option<PathPattern>")]
    pub path: Option<Spanned<PathPattern>>,
    /// Matches this path and everything below it, segment by segment.
    #[schemars(with = "Option<PathPrefix>")]
    pub path_prefix: Option<Spanned<PathPrefix>>,
    #[serde(default)]
    /// Methods this route matches; empty matches any (a 405 lists the others' methods).
    pub methods: Vec<MethodName>,
    /// Headers that must be present with exactly these values.
    #[serde(default)]
    pub headers: BTreeMap<HeaderNameStr, String>,
    /// Query parameters that must be present with exactly these values.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Higher wins when several routes match.
    #[serde(default)]
    pub priority: i32,
    /// Remove the matched `path_prefix` before forwarding.
    #[schemars(with = "Option<bool>")]
    #[schemars(example = true)]
    pub strip_prefix: Option<Spanned<bool>>,
    /// Replace the matched `path_prefix` with this before forwarding.
    #[schemars(with = "Option<PathPrefix>")]
    pub rewrite_prefix: Option<Spanned<PathPrefix>>,
    /// Where requests go after the plugin chain: an `[upstreams.*]` name...
    #[schemars(with = "Option<String>")]
    #[schemars(example = &"orders")]
    pub upstream: Option<Spanned<String>>,
    /// ...or a `[plugins.*]` name whose file is a `wasi:http` handler, which answers instead.
    #[schemars(with = "Option<String>")]
    #[schemars(example = &"hello")]
    pub handler: Option<Spanned<String>>,
    /// Largest request body on this route (default: `[server] max_body`); 413 above.
    #[schemars(example = &"64MiB")]
    pub max_body: Option<ByteSize>,
    /// The plugin chain, run in this order: `"name"` or `{ name = "...", config = { ... } }`.
    #[serde(default)]
    #[schemars(with = "Vec<PluginRef>")]
    pub plugins: Vec<Spanned<PluginRef>>,
    /// Compress responses for clients that accept it: `compress = {}` for the defaults.
    #[schemars(with = "Option<Compress>")]
    pub compress: Option<Spanned<Compress>>,
    /// Share the traffic between upstreams by weight instead of one `upstream`:
    /// `split = { stable = 90, canary = 10 }`.
    #[schemars(with = "Option<BTreeMap<String, u32>>")]
    #[schemars(example = serde_json::json!({"stable": 90, "canary": 10}))]
    pub split: Option<Spanned<BTreeMap<String, u32>>>,
    /// A header or cookie whose value names one of the split's upstreams sends the request there.
    #[schemars(example = serde_json::json!({"header": "x-version"}))]
    pub split_force: Option<ForceBy>,
    /// Keep each client on one side of the split by a hash of this (else by weight, request by
    /// request).
    #[schemars(example = serde_json::json!({"cookie": "session"}))]
    pub split_sticky: Option<HashOn>,
    /// Copy a share of the requests to another upstream; its answers are thrown away.
    #[schemars(with = "Option<Mirror>")]
    pub mirror: Option<Spanned<Mirror>>,
    /// Let the upstream's retry policy retry POST and PATCH too (they are not idempotent:
    /// only for endpoints that tolerate a repeat).
    #[serde(default)]
    pub retry_non_idempotent: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ForceBy {
    Header(HeaderNameStr),
    Cookie(String),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// The `[upstreams.*]` name the copies go to.
    #[schemars(example = &"orders-next")]
    pub upstream: String,
    /// Share of the requests copied, 1 to 100.
    #[serde(default = "default_mirror_percent")]
    pub percent: u32,
    /// Largest request body copied; a request with a larger one is not mirrored.
    #[serde(default = "default_retry_body")]
    pub max_body: ByteSize,
}

/// Response compression on a route (transport work, done by the host as Envoy and nginx do).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compress {
    /// The server's preference among what the client accepts equally.
    #[serde(default = "default_encodings")]
    pub encodings: Vec<Encoding>,
    /// Media types compressed: exact, or with one `*` (`text/*`, `application/*+json`).
    #[serde(default = "default_compress_types")]
    pub types: Vec<String>,
    /// Bodies of a known length below this go out as they are.
    #[serde(default = "default_compress_min")]
    pub min_size: ByteSize,
    #[serde(default = "default_gzip_level")]
    /// gzip level, 1 (fast) to 9 (small).
    pub gzip_level: u32,
    #[serde(default = "default_brotli_level")]
    /// Brotli level, 0 (fast) to 11 (small).
    pub brotli_level: u32,
    #[serde(default = "default_zstd_level")]
    /// zstd level, 1 (fast) to 22 (small).
    pub zstd_level: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Zstd,
    Br,
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Zstd => "zstd",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The levels the encoder takes.
    pub fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Encoding::Zstd => 1..=22,
            Encoding::Br => 0..=11,
            Encoding::Gzip => 1..=9,
        }
    }
}

fn default_attempts() -> u32 {
    2
}
fn default_retry_statuses() -> Vec<u16> {
    vec![502, 503, 504]
}
fn default_budget() -> f64 {
    0.2
}
fn default_budget_reserve() -> u32 {
    10
}
fn default_retry_body() -> ByteSize {
    ByteSize(64 << 10)
}
fn default_backoff() -> Duration {
    Duration::from_millis(25)
}
fn default_breaker_failures() -> u32 {
    5
}
fn default_breaker_window() -> Duration {
    Duration::from_secs(10)
}
fn default_breaker_min_requests() -> u32 {
    20
}
fn default_open_for() -> Duration {
    Duration::from_secs(60)
}
fn default_probes() -> u32 {
    3
}
fn default_fallback_status() -> u16 {
    503
}
fn default_mirror_percent() -> u32 {
    100
}
fn default_health_probes() -> u32 {
    1
}
fn default_fail_on() -> Vec<FailOn> {
    vec![FailOn::Connect]
}
fn default_max_ejected() -> u32 {
    50
}
fn default_encodings() -> Vec<Encoding> {
    vec![Encoding::Zstd, Encoding::Br, Encoding::Gzip]
}
fn default_compress_types() -> Vec<String> {
    [
        "text/*",
        "application/json",
        "application/*+json",
        "application/xml",
        "application/*+xml",
        "application/javascript",
        "image/svg+xml",
    ]
    .map(String::from)
    .to_vec()
}
fn default_compress_min() -> ByteSize {
    ByteSize(1024)
}
fn default_gzip_level() -> u32 {
    6
}
fn default_brotli_level() -> u32 {
    4
}
fn default_zstd_level() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    #[serde(default)]
    /// `memory` (this process) or `redis` (shared by every instance using `url`).
    pub backend: StoreBackend,
    /// `redis://[user:password@]host:port[/db]`, with `backend = "redis"`.
    #[serde(default = "default_redis_url")]
    pub url: String,
    /// Connections to Redis (each multiplexes many requests).
    #[serde(default = "default_store_pool")]
    pub pool_size: usize,
    /// Longest wait for one operation; past it the plugin gets "unavailable".
    #[serde(default = "default_store_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub timeout: Duration,
    /// Longest wait to connect to Redis.
    #[serde(
        default = "default_store_connect_timeout",
        with = "super::types::duration"
    )]
    #[schemars(with = "super::types::DurationText")]
    pub connect_timeout: Duration,
    /// Put before every key, so several gateways' data can share one Redis.
    #[serde(default = "default_store_prefix")]
    pub prefix: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: StoreBackend::Memory,
            url: default_redis_url(),
            pool_size: default_store_pool(),
            timeout: default_store_timeout(),
            connect_timeout: default_store_connect_timeout(),
            prefix: default_store_prefix(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreBackend {
    /// In this process: nothing else needed, nothing shared between gateway instances.
    #[default]
    Memory,
    /// Shared by every gateway instance that uses the same Redis.
    Redis,
}

/// A plugin's file and sandbox, shared by every route that lists it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginDef {
    /// The `.wasm` component; replacing it reloads the plugin.
    #[schemars(with = "PathBuf")]
    #[schemars(example = &"plugins/key_auth.wasm")]
    pub file: Spanned<PathBuf>,
    /// What a request gets when the plugin traps, loops past its deadline or runs out of memory.
    #[serde(default)]
    pub fail: FailMode,
    /// CPU deadline per call.
    #[serde(default = "default_plugin_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub timeout: Duration,
    /// Memory cap per instance, e.g. "64MiB".
    #[serde(default = "default_plugin_memory")]
    pub memory: ByteSize,
    /// Whether instances are reused across requests; by default plugins' are ("pooled") and
    /// handlers' are not ("per_request": a handler built with componentize-js answers one
    /// request per instance; Rust's wasip2 handlers may be pooled).
    #[schemars(example = &"per_request")]
    pub isolation: Option<Isolation>,
    /// Handlers only: the longest a handler may take to answer, its body included (wall clock,
    /// waits too); past it the request gets 504, or its body is cut.
    #[serde(default = "default_handler_timeout", with = "super::types::duration")]
    #[schemars(with = "super::types::DurationText")]
    pub request_timeout: Duration,
    /// Idle instances kept per route for reuse.
    #[serde(default = "default_plugin_pool")]
    pub pool_size: usize,
    /// Largest body a body phase buffers; bigger requests get 413, bigger responses 502...
    #[serde(default = "default_plugin_body_limit")]
    pub body_limit: ByteSize,
    /// ...or, with "pass", a bigger response goes on untouched without this plugin's response
    /// body phase (a cache that stores only what fits, a filter that may skip big downloads).
    #[serde(default)]
    pub over_limit: OverLimit,
    /// Upstreams the plugin may call through its `http-client` capability.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub http: Vec<Spanned<String>>,
    /// Environment variables the plugin sees (none otherwise).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Let the plugin write to the gateway's stderr (for debugging).
    #[serde(default)]
    pub stderr: bool,
    /// Folders the plugin may read.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// Refuse the request: 503 when out of time or memory, 500 for other traps.
    #[default]
    Closed,
    /// Skip the plugin, log and count it, and go on.
    Open,
}

impl FailMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FailMode::Closed => "closed",
            FailMode::Open => "open",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// 413 for a request, 502 for a response.
    #[default]
    Refuse,
    /// The response goes on as it came; the plugin's response body phase does not see it.
    Pass,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Reuse live instances across requests (about 2 µs a call).
    #[default]
    Pooled,
    /// A fresh instance for every call: nothing survives between requests, at ~10x the cost.
    PerRequest,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// A folder on the gateway's machine.
    #[schemars(example = &"/srv/wasmgate/geoip")]
    pub host: PathBuf,
    /// Where the plugin sees it.
    #[schemars(example = &"/data")]
    pub guest: String,
}

/// A route's use of a plugin, with the config handed to the plugin's `init`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PluginRef {
    pub name: String,
    pub config: toml::Table,
}

impl JsonSchema for PluginRef {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PluginRef".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "a `[plugins.*]` name, or the name with the config its `init` gets",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "name": { "type": "string" },
                        "config": { "type": "object", "description": "the plugin's own settings" }
                    },
                    "required": ["name"],
                    "additionalProperties": false
                }
            ],
            "examples": ["request-id", { "name": "rate-limit", "config": { "limit": 100, "window": "1m" } }]
        })
    }
}

impl<'de> Deserialize<'de> for PluginRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            name: String,
            #[serde(default)]
            config: toml::Table,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PluginRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#""name" or { name = "...", config = { ... } }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<PluginRef, E> {
                Ok(PluginRef {
                    name: v.to_string(),
                    config: toml::Table::new(),
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<PluginRef, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(PluginRef {
                    name: t.name,
                    config: t.config,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for Target {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Target".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`host:port`, or the address with a weight (balance = \"weighted\")",
            "oneOf": [
                { "type": "string" },
                {
                    "type": "object",
                    "properties": {
                        "address": { "type": "string" },
                        "weight": { "type": "integer", "minimum": 0, "default": 1 }
                    },
                    "required": ["address"],
                    "additionalProperties": false
                }
            ],
            "examples": ["10.0.0.5:8080", { "address": "10.0.0.6:8080", "weight": 3 }]
        })
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            address: TargetAddr,
            #[serde(default = "one")]
            weight: u32,
        }
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Target;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#""host:port" or { address = "host:port", weight = N }"#)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Target, E> {
                let address = TargetAddr::try_from(v.to_string()).map_err(E::custom)?;
                Ok(Target { address, weight: 1 })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Target, A::Error> {
                let t = Table::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Target {
                    address: t.address,
                    weight: t.weight,
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Loopback only: listening on every interface is something to ask for, not a default.
fn default_listeners() -> Vec<Spanned<Listener>> {
    vec![Spanned::new(
        0..0,
        Listener {
            address: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls: None,
            http2: true,
            max_connections: None,
            proxy_protocol: false,
            redirect_https: false,
        },
    )]
}
fn default_admin_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}
fn default_log_level() -> String {
    "info".into()
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_header_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_ping_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_max_header_size() -> ByteSize {
    ByteSize(32 << 10)
}
fn default_max_body() -> ByteSize {
    ByteSize(16 << 20)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_fails() -> u32 {
    1
}
fn default_fail_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_check_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_pool_idle() -> Duration {
    Duration::from_secs(90)
}
fn default_pool_max_idle() -> usize {
    256
}
fn default_plugin_timeout() -> Duration {
    Duration::from_millis(50)
}
fn default_handler_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_plugin_cache_max() -> ByteSize {
    ByteSize(1 << 30)
}
fn default_plugin_memory() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_plugin_pool() -> usize {
    64
}
fn default_plugin_body_limit() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_redis_url() -> String {
    "redis://127.0.0.1:6379".into()
}
fn default_store_pool() -> usize {
    4
}
fn default_store_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_store_connect_timeout() -> Duration {
    Duration::from_millis(500)
}
fn default_store_prefix() -> String {
    "wasmgate:".into()
}
fn yes() -> bool {
    true
}
fn one() -> u32 {
    1
}
