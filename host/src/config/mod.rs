//! Reading `gateway.toml`: parse (serde reports bad keys and values where they stand), then
//! validate what only the whole file can tell (references, combinations, files it names).

mod error;
mod etcd_source;
mod partial;
pub mod reference;
#[cfg(test)]
mod reference_doc;
mod schema;
mod secrets;
mod syntax;
#[cfg(test)]
mod tests;
mod types;

pub use error::{ConfigError, ConfigErrors};
pub use etcd_source::Origin;
pub use schema::*;
pub use types::{
    ByteSize, HeaderNameStr, HostPattern, MAX_WORKERS, MethodName, PathPattern, PathPrefix,
    TargetAddr, WorkerCount, pattern_segments,
};

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use error::Locator;

/// A validated config and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub path: PathBuf,
    /// The file's text, to locate errors found after parsing (plugin loading).
    pub text: std::sync::Arc<str>,
    /// Values that came from `${env:...}` and `${file:...}`: never shown by the admin.
    pub secrets: std::sync::Arc<[String]>,
    /// Stretches of `text` that came from etcd keys (`[etcd] config_prefix`).
    pub origins: std::sync::Arc<[Origin]>,
}

impl Loaded {
    /// An error at a place in the file.
    pub fn error_at(&self, span: std::ops::Range<usize>, message: String) -> ConfigError {
        Locator {
            file: &self.path,
            text: &self.text,
            origins: &self.origins,
        }
        .at(span, message)
    }

    /// A path from the file, taken relative to the file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        resolve(&self.path, p)
    }
}

fn resolve(config_path: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        config_path
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(p)
    }
}

/// Reads, parses and validates a config file, returning every problem found.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    parse(&read(path)?, path)
}

/// A config file's text.
pub fn read(path: &Path) -> Result<String, ConfigErrors> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError::whole(
            path,
            format!("cannot read the config file: {e}"),
        )])
    })
}

/// The `[etcd]` table of a file that keeps routes, upstreams and plugins in etcd
/// (`config_prefix`), read before the rest so the entries can be fetched; `None` otherwise, or
/// when the file does not parse (the whole parse then says why).
pub fn etcd_source(text: &str) -> Option<EtcdConfig> {
    #[derive(serde::Deserialize)]
    struct Peek {
        etcd: Option<EtcdConfig>,
    }
    toml::from_str::<Peek>(text)
        .ok()?
        .etcd
        .filter(|e| e.config_prefix.is_some())
}

/// The plugin files a config text names (`[plugins.NAME] file`), each with an error maker
/// that points at its `file` key: `check` compiles them even when the rest of the file has
/// errors, so a broken `.wasm` shows in the same run. Empty when the text does not parse.
pub fn plugin_files(text: &str, path: &Path) -> Vec<(String, PathBuf, ConfigError)> {
    let Ok(doc) = toml::de::DeTable::parse(text) else {
        return Vec::new();
    };
    let loc = Locator {
        file: path,
        text,
        origins: &[],
    };
    let Some(toml::de::DeValue::Table(plugins)) = doc.get_ref().get("plugins").map(|v| v.get_ref())
    else {
        return Vec::new();
    };
    plugins
        .iter()
        .filter_map(|(name, def)| {
            let toml::de::DeValue::Table(def) = def.get_ref() else {
                return None;
            };
            let file = def.get("file")?;
            let file_str = file.get_ref().as_str()?;
            Some((
                name.get_ref().to_string(),
                resolve(path, Path::new(file_str)),
                loc.at(file.span(), format!("plugin `{}`", name.get_ref())),
            ))
        })
        .collect()
}

/// Parses and validates config text; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Loaded, ConfigErrors> {
    parse_with(text, path, Vec::new())
}

/// The file's text with the objects kept in etcd under `prefix` (key, value), parsed and
/// validated as one config; errors in an entry name its key.
pub fn parse_with_etcd(
    file_text: &str,
    path: &Path,
    prefix: &str,
    entries: &[(String, String)],
) -> Result<Loaded, ConfigErrors> {
    let (text, origins) =
        etcd_source::assemble(file_text, prefix, entries).map_err(ConfigErrors)?;
    parse_with(&text, path, origins)
}

fn parse_with(text: &str, path: &Path, origins: Vec<Origin>) -> Result<Loaded, ConfigErrors> {
    use serde::Deserialize;
    let loc = Locator {
        file: path,
        text,
        origins: &origins,
    };
    let toml_error =
        |e: &toml::de::Error| loc.at(e.span().unwrap_or(0..0), e.message().trim_end().to_string());
    // The first syntax error only: past one, the parser's guesses at the rest mislead.
    let mut doc = toml::de::DeTable::parse(text).map_err(|e| {
        let (span, why) = syntax::explain(text, e.span().unwrap_or(0..0), e.message());
        ConfigErrors(vec![loc.at(span, why)])
    })?;
    let secrets = secrets::resolve(doc.get_mut(), path).map_err(|errs| {
        ConfigErrors(
            errs.into_iter()
                .map(|(span, message)| loc.at(span, message))
                .collect(),
        )
    })?;
    // A value of the wrong type stops serde at the first; the entry holding it is set aside
    // and the rest read again, so one run reports every such error.
    let mut errors = Vec::new();
    let mut set_aside = partial::SetAside::default();
    let config = loop {
        match Config::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(config) => break Some(config),
            Err(e) => {
                let at = e.span().unwrap_or(0..0);
                let mut error = toml_error(&e);
                // serde names the types, not the key: say which key it is.
                if let Some(key) = partial::key_at(doc.get_ref(), &at)
                    && error.message.starts_with("invalid ")
                {
                    error.message = format!("`{key}`: {}", error.message);
                }
                errors.push(error);
                if errors.len() >= partial::MAX_ERRORS || !set_aside.remove(doc.get_mut(), &at) {
                    break None;
                }
            }
        }
    };
    if let Some(config) = &config {
        let mistyped = !errors.is_empty();
        errors.extend(
            validate(config, &loc)
                .into_iter()
                .filter(|e| !set_aside.explains(&e.message, mistyped)),
        );
    }
    match config {
        Some(config) if errors.is_empty() => Ok(Loaded {
            config,
            path: path.to_path_buf(),
            text: text.into(),
            secrets: secrets.into(),
            origins: origins.into(),
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

fn validate(c: &Config, loc: &Locator) -> Vec<ConfigError> {
    let mut errs = Vec::new();
    validate_server(c, loc, &mut errs);

    let mut addrs = HashSet::new();
    for l in &c.listeners {
        // Port 0 asks the system for a free port, so several may share it.
        let address = l.get_ref().address;
        if address.port() != 0 && !addrs.insert(address) {
            errs.push(loc.at(
                l.span(),
                format!(
                    "two listeners use address {}; give each listener its own address",
                    l.get_ref().address
                ),
            ));
        }
        if let Some(tls) = &l.get_ref().tls
            && let Err(e) = crate::server::tls::server_config(tls, |p| resolve(loc.file, p), true)
        {
            errs.push(loc.at(tls.cert.span(), e.to_string()));
        }
        if l.get_ref().redirect_https {
            if l.get_ref().tls.is_some() {
                errs.push(loc.at(l.span(), "a TLS listener has redirect_https; set it on the plain listener whose requests should move to https"));
            } else if c.listeners.iter().all(|o| o.get_ref().tls.is_none()) {
                errs.push(loc.at(l.span(), "redirect_https sends clients to the first TLS listener, but there is none; add a [[listeners]] with tls"));
            }
        }
    }
    if c.admin.enabled && addrs.contains(&c.admin.address) {
        errs.push(loc.at(
            0..0,
            format!(
                "the admin address {} is also a listener's; set [admin] address to another port",
                c.admin.address
            ),
        ));
    }
    if let Some(demo) = &c.demo_backend
        && demo.address.port() != 0
        && (addrs.contains(&demo.address) || (c.admin.enabled && demo.address == c.admin.address))
    {
        errs.push(loc.at(
            0..0,
            format!(
                "[demo_backend] address {} is already taken by a listener or the admin; pick a free port",
                demo.address
            ),
        ));
    }

    for s in &c.server.dns_servers {
        if dns_server(s.get_ref()).is_none() {
            errs.push(loc.at(
                s.span(),
                format!("dns server `{}` is not an address; write e.g. \"10.0.0.2\" or \"127.0.0.1:5353\"", s.get_ref()),
            ));
        }
    }
    for (name, u) in &c.upstreams {
        if u.get_ref().etcd_prefix.is_some()
            && c.etcd
                .as_ref()
                .is_none_or(|e| e.get_ref().endpoints.is_empty())
        {
            errs.push(loc.at(
                u.span(),
                format!("upstream `{name}` reads targets from etcd, but there is no [etcd] with endpoints; add [etcd] endpoints = [\"http://127.0.0.1:2379\"]"),
            ));
        }
        validate_upstream(name, u, loc, &mut errs);
        validate_resilience(name, u, &c.upstreams, loc, &mut errs);
    }

    let mut names = HashSet::new();
    for (i, r) in c.routes.iter().enumerate() {
        let route = r.get_ref();
        let label = route_name(route, i);
        if let Some(n) = &route.name
            && !names.insert(n.get_ref().clone())
        {
            errs.push(loc.at(
                n.span(),
                format!("two routes are named `{label}`; route names must be unique"),
            ));
        }
        validate_traffic(&label, r, &c.upstreams, loc, &mut errs);
        match (&route.upstream, &route.handler) {
            _ if route.split.is_some() => {}
            (Some(u), None) if !c.upstreams.contains_key(u.get_ref()) => {
                let known: Vec<&str> = c.upstreams.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "no upstream is defined yet".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                errs.push(loc.at(
                    u.span(),
                    format!(
                        "route `{label}` uses upstream `{u}`, which is not defined; add [upstreams.{u}] or use a defined one ({hint})",
                        u = u.get_ref()
                    ),
                ));
            }
            (None, Some(h)) => match c.plugins.get(h.get_ref()) {
                None => errs.push(loc.at(
                    h.span(),
                    format!(
                        "route `{label}` uses handler `{h}`, which is not defined; add [plugins.{h}] with the handler's `file`",
                        h = h.get_ref()
                    ),
                )),
                Some(def) if def.get_ref().fail == FailMode::Open => errs.push(loc.at(
                    def.span(),
                    format!(
                        "plugin `{h}` is route `{label}`'s handler but has fail = \"open\": a handler has nothing to fall back to; remove `fail`",
                        h = h.get_ref()
                    ),
                )),
                Some(_) => {}
            },
            (Some(_), Some(h)) => errs.push(loc.at(
                h.span(),
                format!("route `{label}` has both an `upstream` and a `handler`; keep one (a handler answers instead of an upstream)"),
            )),
            (None, None) => errs.push(loc.at(
                r.span(),
                format!("route `{label}` has neither `upstream` nor `handler`; add upstream = \"name\" (an [upstreams.*] entry) or handler = \"name\" (a [plugins.*] entry whose file is a wasi:http handler)"),
            )),
            _ => {}
        }
        if let (Some(p), Some(_)) = (&route.path, &route.path_prefix) {
            errs.push(loc.at(
                p.span(),
                format!("route `{label}` sets both `path` and `path_prefix`; keep one"),
            ));
        }
        let strip = route.strip_prefix.as_ref().filter(|s| *s.get_ref());
        if route.path_prefix.is_none() {
            if let Some(s) = strip {
                errs.push(loc.at(
                    s.span(),
                    format!("route `{label}` sets `strip_prefix` but has no `path_prefix` to strip; add `path_prefix`"),
                ));
            }
            if let Some(s) = &route.rewrite_prefix {
                errs.push(loc.at(
                    s.span(),
                    format!("route `{label}` sets `rewrite_prefix` but has no `path_prefix` to rewrite; add `path_prefix`"),
                ));
            }
        }
        if let (Some(s), Some(_)) = (strip, &route.rewrite_prefix) {
            errs.push(loc.at(
                s.span(),
                format!("route `{label}` sets both `strip_prefix` and `rewrite_prefix`; `rewrite_prefix = \"/\"` strips"),
            ));
        }
        if let Some(c) = &route.compress
            && let Some(msg) = compress_problem(c.get_ref())
        {
            errs.push(loc.at(c.span(), format!("route `{label}` `compress`: {msg}")));
        }
        for p in &route.plugins {
            let name = &p.get_ref().name;
            if !c.plugins.contains_key(name) {
                let known: Vec<&str> = c.plugins.keys().map(String::as_str).collect();
                let hint = if known.is_empty() {
                    "no plugin is defined yet".to_string()
                } else {
                    format!("defined: {}", known.join(", "))
                };
                errs.push(loc.at(
                    p.span(),
                    format!("route `{label}` uses plugin `{name}`, which is not defined; add [plugins.{name}] with its `file` ({hint})"),
                ));
            }
        }
    }
    for (name, p) in &c.plugins {
        validate_plugin(name, p, c, loc, &mut errs);
    }
    errs
}

/// What `run` would refuse or what would lock users out, refused by `check` and reload alike.
fn validate_server(c: &Config, loc: &Locator, errs: &mut Vec<ConfigError>) {
    if let Some(fields) = &c.log.access_fields {
        for f in fields.get_ref() {
            if crate::telemetry::access::field_bit(f).is_none() {
                errs.push(loc.at(
                    fields.span(),
                    format!(
                        "[log] access_fields: no field `{f}`; the fields are {}",
                        crate::telemetry::access::FIELDS.join(", ")
                    ),
                ));
            }
        }
    }
    if !(0.0..=1.0).contains(&c.log.access_sample) {
        errs.push(loc.at(
            0..0,
            format!(
                "[log] access_sample = {} is not a share: give 0.0 to 1.0 (0.1 logs one successful request in ten; errors are always logged)",
                c.log.access_sample
            ),
        ));
    }
    if let Some(t) = &c.tracing {
        validate_tracing(t, loc, errs);
    }
    let s = &c.server;
    if c.routes.is_empty() && !s.allow_empty {
        errs.push(loc.at(
            0..0,
            "the config has no [[routes]], so every request would get 404; add a route, or set [server] allow_empty = true to serve an empty config on purpose",
        ));
    }
    for (key, d) in [
        ("header_read_timeout", s.header_read_timeout),
        ("idle_timeout", s.idle_timeout),
        ("body_read_timeout", s.body_read_timeout),
        ("http2_ping_interval", s.http2_ping_interval),
    ] {
        if d.is_zero() {
            errs.push(loc.at(
                0..0,
                format!("[server] {key} is 0, which would close every connection at once; give a duration such as \"30s\""),
            ));
        }
    }
    let header = s.max_header_size.bytes();
    if !(MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&header) {
        errs.push(loc.at(
            0..0,
            format!("[server] max_header_size = {header} bytes is out of range: give 8KiB to 1MiB (nginx allows 32KiB by default)"),
        ));
    }
    if s.max_connections == Some(0) {
        errs.push(loc.at(
            0..0,
            "[server] max_connections = 0 would refuse every client; give a positive number or remove the key",
        ));
    }
    for l in &c.listeners {
        if let Some(m) = &l.get_ref().max_connections
            && *m.get_ref() == 0
        {
            errs.push(loc.at(
                m.span(),
                "max_connections = 0 would refuse every client; give a positive number or remove the key",
            ));
        }
    }
    if c.admin.enabled {
        let open = !c.admin.address.ip().is_loopback();
        match &c.admin.token {
            None if open => errs.push(loc.at(
                0..0,
                format!(
                    "[admin] listens on {}, beyond loopback, without a token: anyone who reaches it could reload or read the config; set [admin] token = \"${{env:WASMGATE_ADMIN_TOKEN}}\" or listen on 127.0.0.1",
                    c.admin.address
                ),
            )),
            Some(t) if t.len() < 16 => errs.push(loc.at(
                0..0,
                "[admin] token is shorter than 16 characters, too easy to guess; use a long random one (e.g. `openssl rand -hex 32`)",
            )),
            _ => {}
        }
    }
    if c.store.backend == StoreBackend::Redis
        && let Err(e) = crate::store::RedisStore::check_url(&c.store.url)
    {
        errs.push(loc.at(0..0, format!("[store] url: {e}")));
    }
}

/// Bounds of `[server] max_header_size`: hyper buffers at least 8 KiB per connection anyway.
pub const MIN_HEADER_SIZE: usize = 8 << 10;
const MAX_HEADER_SIZE: usize = 1 << 20;

fn validate_tracing(t: &toml::Spanned<Tracing>, loc: &Locator, errs: &mut Vec<ConfigError>) {
    let span = t.span();
    let t = t.get_ref();
    match t.endpoint.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.authority().is_some() => {}
        Ok(u) if u.scheme_str() == Some("https") => errs.push(loc.at(
            span.clone(),
            format!("[tracing] endpoint `{}`: only plain http is supported; point it at a local collector or agent (http://127.0.0.1:4318/v1/traces) that forwards over TLS", t.endpoint),
        )),
        _ => errs.push(loc.at(
            span.clone(),
            format!("[tracing] endpoint `{}` is not an http:// URL; give the collector's OTLP/HTTP traces URL, such as http://127.0.0.1:4318/v1/traces", t.endpoint),
        )),
    }
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        errs.push(loc.at(
            span.clone(),
            format!("[tracing] sample_ratio = {} is not a share: give 0.0 to 1.0 (0.01 records one trace in a hundred)", t.sample_ratio),
        ));
    }
    if t.batch_size == 0 || t.queue_size < t.batch_size {
        errs.push(loc.at(
            span.clone(),
            format!(
                "[tracing] batch_size = {} must be at least 1 and at most queue_size = {}",
                t.batch_size, t.queue_size
            ),
        ));
    }
    for (k, v) in &t.headers {
        if http::HeaderName::from_bytes(k.as_bytes()).is_err()
            || http::HeaderValue::from_str(v).is_err()
        {
            errs.push(loc.at(
                span.clone(),
                format!("[tracing] headers: `{k}` is not a valid header name and value"),
            ));
        }
    }
}

fn validate_plugin(
    name: &str,
    p: &toml::Spanned<PluginDef>,
    c: &Config,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) {
    let def = p.get_ref();
    let file = resolve(loc.file, def.file.get_ref());
    if !file.is_file() {
        errs.push(loc.at(
            def.file.span(),
            format!(
                "plugin `{name}`: file {} does not exist; build it (plugins/build.sh) or fix `file`",
                file.display()
            ),
        ));
    }
    for h in &def.http {
        if !c.upstreams.contains_key(h.get_ref()) {
            errs.push(loc.at(
                h.span(),
                format!(
                    "plugin `{name}` may call upstream `{}`, which is not defined; add it to [upstreams]",
                    h.get_ref()
                ),
            ));
        }
    }
    if def.timeout.is_zero() {
        errs.push(loc.at(
            p.span(),
            format!("plugin `{name}` has timeout 0; give it a deadline such as \"50ms\""),
        ));
    }
    if def.memory.bytes() < (2 << 20) {
        errs.push(loc.at(
            p.span(),
            format!("plugin `{name}` has less than 2MiB of memory, too little for any plugin; raise `memory`"),
        ));
    }
    for d in &def.dirs {
        if !resolve(loc.file, &d.host).is_dir() {
            errs.push(loc.at(
                p.span(),
                format!(
                    "plugin `{name}` is granted folder {}, which does not exist",
                    d.host.display()
                ),
            ));
        }
    }
}

fn validate_upstream(
    name: &str,
    u: &toml::Spanned<Upstream>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) {
    let up = u.get_ref();
    if up.targets.is_empty() && up.srv.is_none() && up.etcd_prefix.is_none() {
        errs.push(loc.at(
            u.span(),
            format!("upstream `{name}` has no targets; add targets = [\"host:port\"] (or srv = \"_http._tcp.name\")"),
        ));
    }
    let balance = up
        .balance
        .as_ref()
        .map(|b| *b.get_ref())
        .unwrap_or_default();
    let balance_span = up.balance.as_ref().map_or_else(|| u.span(), |b| b.span());
    for t in &up.targets {
        let target = t.get_ref();
        if target.weight == 0 {
            errs.push(loc.at(
                t.span(),
                format!(
                    "target {} of upstream `{name}` has weight 0; remove the target instead",
                    target.address
                ),
            ));
        } else if target.weight != 1 && balance != Balance::Weighted {
            errs.push(loc.at(
                t.span(),
                format!(
                    "target {} of upstream `{name}` has a weight, but weights only count with balance = \"weighted\"; set that or drop the weight",
                    target.address
                ),
            ));
        }
    }
    match (balance, &up.hash_on) {
        (Balance::Hash, None) => errs.push(loc.at(
            balance_span,
            format!(
                "upstream `{name}` balances by hash but has no `hash_on`; add hash_on = \"client_ip\", {{ header = \"x-user\" }} or {{ cookie = \"session\" }}"
            ),
        )),
        (b, Some(_)) if b != Balance::Hash => errs.push(loc.at(
            balance_span,
            format!("upstream `{name}` sets `hash_on` but balance is not \"hash\"; set balance = \"hash\" or drop hash_on"),
        )),
        _ => {}
    }
    if let Some(tls) = &up.tls {
        match (&tls.cert, &tls.key) {
            (Some(c), None) | (None, Some(c)) => errs.push(loc.at(
                c.span(),
                format!("upstream `{name}` tls: a client certificate needs both `cert` and `key`"),
            )),
            _ => {}
        }
        if let Err(e) = crate::upstream::tls::client_config(&upstream_tls_files(tls, loc.file)) {
            let span = tls
                .ca
                .as_ref()
                .or(tls.cert.as_ref())
                .map_or_else(|| u.span(), |s| s.span());
            errs.push(loc.at(span, format!("upstream `{name}` tls: {e}")));
        }
    }
}

/// A route's `split`, `split_force`, `split_sticky` and `mirror`.
fn validate_traffic(
    label: &str,
    r: &toml::Spanned<Route>,
    all: &std::collections::BTreeMap<String, toml::Spanned<Upstream>>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) {
    let route = r.get_ref();
    let unknown = |u: &str| {
        let known: Vec<&str> = all.keys().map(String::as_str).collect();
        format!(
            "upstream `{u}` is not defined; add [upstreams.{u}] or use a defined one ({})",
            known.join(", ")
        )
    };
    match &route.split {
        Some(split) => {
            let span = split.span();
            let mut bad = |what: String| {
                errs.push(loc.at(span.clone(), format!("route `{label}` split: {what}")));
            };
            if route.upstream.is_some() || route.handler.is_some() {
                bad("a split route has no `upstream` or `handler` of its own; remove it (the split names the upstreams)".into());
            }
            if split.get_ref().len() < 2 {
                bad("name two upstreams or more with their weights, e.g. { stable = 90, canary = 10 }".into());
            }
            if split.get_ref().values().all(|w| *w == 0) {
                bad("every weight is 0; give the side that should take traffic a weight".into());
            }
            if let Some(u) = split.get_ref().keys().find(|u| !all.contains_key(*u)) {
                bad(unknown(u));
            }
        }
        None => {
            if route.split_force.is_some() || route.split_sticky.is_some() {
                errs.push(loc.at(
                    r.span(),
                    format!("route `{label}` sets split_force or split_sticky without a split; add split = {{ stable = 90, canary = 10 }} or remove them"),
                ));
            }
        }
    }
    if let Some(m) = &route.mirror {
        let mirror = m.get_ref();
        if !all.contains_key(&mirror.upstream) {
            errs.push(loc.at(
                m.span(),
                format!("route `{label}` mirror: {}", unknown(&mirror.upstream)),
            ));
        }
        if !(1..=100).contains(&mirror.percent) {
            errs.push(loc.at(
                m.span(),
                format!(
                    "route `{label}` mirror: percent = {} is out of range; give 1 to 100",
                    mirror.percent
                ),
            ));
        }
    }
}

/// The `retry` and `breaker` tables and `health.max_ejected_percent` of one upstream.
fn validate_resilience(
    name: &str,
    u: &toml::Spanned<Upstream>,
    all: &std::collections::BTreeMap<String, toml::Spanned<Upstream>>,
    loc: &Locator,
    errs: &mut Vec<ConfigError>,
) {
    let up = u.get_ref();
    if up.health.max_ejected_percent > 100 {
        errs.push(loc.at(
            u.span(),
            format!(
                "upstream `{name}`: health.max_ejected_percent = {} is over 100; give a percentage",
                up.health.max_ejected_percent
            ),
        ));
    }
    if up.health.probes == 0 {
        errs.push(loc.at(
            u.span(),
            format!("upstream `{name}`: health.probes = 0 could never bring a target back; give 1 or more"),
        ));
    }
    if let Some(r) = &up.retry {
        let (span, r) = (r.span(), r.get_ref());
        let mut bad = |what: String| {
            errs.push(loc.at(span.clone(), format!("upstream `{name}` retry: {what}")));
        };
        if !(1..=10).contains(&r.attempts) {
            bad(format!(
                "attempts = {} is out of range; give 1 to 10 (tries in all, the first included)",
                r.attempts
            ));
        }
        if let Some(s) = r
            .statuses
            .iter()
            .find(|s| !(500..=599).contains(*s) && **s != 429)
        {
            bad(format!(
                "status {s} is not retried; list 5xx statuses (and 429 if you must)"
            ));
        }
        if !(0.0..=1.0).contains(&r.budget) {
            bad(format!(
                "budget = {} is out of range; give a share from 0 to 1 (0.2 = at most 20% extra requests)",
                r.budget
            ));
        }
        if r.per_try_timeout.is_some_and(|t| t.is_zero()) {
            bad("per_try_timeout is zero; give a duration such as \"2s\"".into());
        }
    }
    if let Some(b) = &up.breaker {
        let (span, b) = (b.span(), b.get_ref());
        let mut bad = |what: String| {
            errs.push(loc.at(span.clone(), format!("upstream `{name}` breaker: {what}")));
        };
        if let Some(r) = b.failure_ratio
            && !(r > 0.0 && r <= 1.0)
        {
            bad(format!(
                "failure_ratio = {r} is out of range; give a share above 0 and up to 1, e.g. 0.5"
            ));
        }
        if b.failures == 0 && b.failure_ratio.is_none() {
            bad("failures = 0 and no failure_ratio: it could never open; set one of them".into());
        }
        if b.probes == 0 {
            bad("probes = 0 could never close it again; give 1 or more".into());
        }
        if b.open_for.is_zero() {
            bad("open_for is zero; give a duration such as \"30s\"".into());
        }
        if b.fallback.is_some() && b.fallback_upstream.is_some() {
            bad("has both `fallback` and `fallback_upstream`; keep one".into());
        }
        if let Some(f) = &b.fallback {
            let a = f.get_ref();
            if http::StatusCode::from_u16(a.status).is_err() || a.status < 200 {
                errs.push(loc.at(
                    f.span(),
                    format!(
                        "upstream `{name}` breaker fallback: status {} is not a final HTTP status; give 200 to 599",
                        a.status
                    ),
                ));
            }
            for (k, v) in &a.headers {
                if http::HeaderValue::from_str(v).is_err() {
                    errs.push(loc.at(
                        f.span(),
                        format!("upstream `{name}` breaker fallback: header `{k}` has a value that is not a valid header value"),
                    ));
                }
            }
        }
        if let Some(f) = &b.fallback_upstream {
            let other = f.get_ref();
            if other == name {
                errs.push(loc.at(
                    f.span(),
                    format!("upstream `{name}` breaker: fallback_upstream is the upstream itself; name another one"),
                ));
            } else if !all.contains_key(other) {
                errs.push(loc.at(
                    f.span(),
                    format!("upstream `{name}` breaker: fallback_upstream `{other}` is not defined; add [upstreams.{other}]"),
                ));
            }
        }
    }
}

/// The files an upstream's `tls` names, resolved against the config file's folder.
pub fn upstream_tls_files(tls: &UpstreamTls, config_path: &Path) -> crate::upstream::tls::Files {
    crate::upstream::tls::Files {
        ca: tls.ca.as_ref().map(|c| resolve(config_path, c.get_ref())),
        client: tls.cert.as_ref().zip(tls.key.as_ref()).map(|(c, k)| {
            (
                resolve(config_path, c.get_ref()),
                resolve(config_path, k.get_ref()),
            )
        }),
    }
}

/// A `dns_servers` entry: an address with a port, or an IP (port 53).
pub fn dns_server(s: &str) -> Option<std::net::SocketAddr> {
    s.parse().ok().or_else(|| {
        s.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, 53))
    })
}

/// The name a route is known by in logs and errors.
pub fn route_name(r: &Route, index: usize) -> String {
    r.name
        .as_ref()
        .map_or_else(|| format!("route-{}", index + 1), |n| n.get_ref().clone())
}

/// What is wrong with a route's `compress` table, if anything.
fn compress_problem(c: &schema::Compress) -> Option<String> {
    if c.encodings.is_empty() {
        return Some(
            "`encodings` is empty; list some of \"zstd\", \"br\", \"gzip\" or remove `compress`"
                .into(),
        );
    }
    if c.types.is_empty() {
        return Some("`types` is empty; list media types such as \"application/json\"".into());
    }
    if let Some(t) = c
        .types
        .iter()
        .find(|t| t.matches('*').count() > 1 || !t.contains('/'))
    {
        return Some(format!(
            "type `{t}` is not a media type (`text/html`, or one `*`: `text/*`)"
        ));
    }
    let levels = [
        ("gzip_level", schema::Encoding::Gzip, c.gzip_level),
        ("brotli_level", schema::Encoding::Br, c.brotli_level),
        ("zstd_level", schema::Encoding::Zstd, c.zstd_level),
    ];
    levels.into_iter().find_map(|(key, e, level)| {
        let r = e.levels();
        (!r.contains(&level)).then(|| {
            format!(
                "`{key}` = {level} is out of range; use {} to {}",
                r.start(),
                r.end()
            )
        })
    })
}
