//! What a config compiles to: the router, the upstreams with their pools, the TLS acceptors.
//! A `Runtime` is immutable; a reload builds a new one and swaps it in (see `reload`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use http::{HeaderName, HeaderValue, Method};
use tokio_rustls::TlsAcceptor;

use crate::config::{self, ConfigError, ConfigErrors, Loaded};
use crate::plugin::{Chain, Handler, Module, PluginHost};
use crate::router::{PathMatch, RouteSpec, Router};
use crate::telemetry::access;
use crate::telemetry::requests::RouteStats;
use crate::telemetry::traces::Tracer;
use crate::upstream::{HashSource, Mirror, Split, Upstream};

/// What a matched route leads to.
#[derive(Debug)]
pub struct RouteTarget {
    pub name: Arc<str>,
    /// Where requests go after the chain, unless a plugin picks another upstream...
    pub upstream: Option<Arc<Upstream>>,
    /// ...or the component that answers instead.
    pub handler: Option<Arc<Handler>>,
    /// Replaces the matched `path_prefix` (empty string = strip it).
    pub rewrite_prefix: Option<Box<str>>,
    /// The route's plugins (an empty chain when it has none).
    pub chain: Arc<Chain>,
    /// Largest request body, in bytes (the route's `max_body` or the server's).
    pub max_body: u64,
    /// Response compression, when the route asks for it.
    pub compress: Option<Box<crate::config::Compress>>,
    /// The upstream's retry policy covers POST and PATCH too.
    pub retry_non_idempotent: bool,
    /// Chooses the upstream among several (canary), instead of `upstream`.
    pub split: Option<Split>,
    /// Copies a share of the requests to a shadow upstream.
    pub mirror: Option<Mirror>,
    /// Its request metrics (`None` with metrics off).
    pub stats: Option<Arc<RouteStats>>,
}

impl RouteTarget {
    /// The upstream a request goes to (before plugins, which may pick another).
    pub fn upstream_for(&self, req: &dyn HashSource) -> Option<Arc<Upstream>> {
        match &self.split {
            Some(split) => split.choose(req).cloned(),
            None => self.upstream.clone(),
        }
    }
}

pub struct Runtime {
    pub generation: u64,
    pub loaded: Loaded,
    pub router: Router<RouteTarget>,
    pub upstreams: Arc<BTreeMap<String, Arc<Upstream>>>,
    /// Compiled plugin files, reused by the next generation when unchanged.
    pub modules: Vec<Arc<Module>>,
    /// By listener index; `None` for plain listeners.
    pub tls: Vec<Option<TlsAcceptor>>,
    /// How access-log lines look, when there is an access log.
    pub access: Option<Arc<access::Format>>,
    /// Requests are counted in the metrics (`[metrics] enabled`).
    pub metrics: bool,
    /// Requests are traced (`[tracing]`).
    pub tracer: Option<Arc<Tracer>>,
    /// Some route's chain has a plugin with a log phase.
    pub log_phase: bool,
    /// Longest pause between two reads of a client's request body.
    pub body_read_timeout: std::time::Duration,
    /// Whose forwarding headers name the client.
    pub trusted: crate::client_ip::TrustedProxies,
}

impl Runtime {
    /// Compiles a validated config. Upstreams whose settings did not change are taken over from
    /// `previous`, with their warm connection pools and health state, and so are plugin files
    /// whose content did not change. Plugins are compiled and initialized here, off the request
    /// path; any failure refuses the whole generation.
    pub async fn build(
        loaded: Loaded,
        previous: Option<&Runtime>,
        generation: u64,
        host: &Arc<PluginHost>,
    ) -> Result<Runtime, ConfigErrors> {
        let fail =
            |message: String| ConfigErrors(vec![ConfigError::whole(loaded.path.clone(), message)]);
        let cfg = &loaded.config;
        let mut upstreams = BTreeMap::new();
        for (name, u) in &cfg.upstreams {
            let u = u.get_ref();
            let files = u
                .tls
                .as_ref()
                .map(|t| config::upstream_tls_files(t, &loaded.path))
                .unwrap_or_default();
            let reused = previous
                .and_then(|p| p.upstreams.get(name))
                .filter(|old| old.config == *u && old.tls_stamp == files.stamp())
                .cloned();
            let up = match reused {
                Some(up) => up,
                None => Upstream::new(name, u, &files)
                    .map_err(|e| fail(format!("upstream `{name}`: {e}")))?,
            };
            upstreams.insert(name.clone(), up);
        }

        for up in upstreams.values() {
            let other = up
                .config
                .breaker
                .as_ref()
                .and_then(|b| b.get_ref().fallback_upstream.as_ref())
                .and_then(|name| upstreams.get(name.get_ref()));
            if let Some(other) = other {
                up.set_fallback(other);
            }
        }
        let upstreams = Arc::new(upstreams);
        let previous_modules = previous.map_or(&[][..], |p| &p.modules[..]);
        let plugins = host
            .load(&loaded, &upstreams, previous_modules)
            .await
            .map_err(ConfigErrors)?;
        let log_phase = plugins
            .chains
            .iter()
            .any(|c| c.phases.contains(crate::plugin::Phases::LOG));
        let mut chains = plugins.chains.into_iter();
        let mut handlers = plugins.handlers.into_iter();

        let mut routes = Vec::with_capacity(cfg.routes.len());
        for (i, r) in cfg.routes.iter().enumerate() {
            let r = r.get_ref();
            let upstream = match &r.upstream {
                Some(u) => Some(
                    upstreams
                        .get(u.get_ref())
                        .cloned()
                        .ok_or_else(|| fail(format!("unknown upstream `{}`", u.get_ref())))?,
                ),
                None => None,
            };
            let name: Arc<str> = config::route_name(r, i).into();
            let stats = cfg.metrics.enabled.then(|| {
                let sides = r.split.iter().flat_map(|s| s.get_ref().keys());
                let ups = r.upstream.iter().map(|u| u.get_ref()).chain(sides);
                Arc::new(RouteStats::new(
                    name.clone(),
                    ups.map(|u| Arc::from(u.as_str())),
                ))
            });
            routes.push((
                route_spec(r),
                RouteTarget {
                    name,
                    stats,
                    upstream,
                    handler: handlers
                        .next()
                        .ok_or_else(|| fail(format!("route {i} has no handler slot")))?,
                    rewrite_prefix: match (&r.rewrite_prefix, &r.strip_prefix) {
                        (Some(p), _) => Some(p.get_ref().as_str().trim_end_matches('/').into()),
                        (None, Some(s)) if *s.get_ref() => Some("".into()),
                        _ => None,
                    },
                    chain: chains
                        .next()
                        .ok_or_else(|| fail(format!("route {i} has no chain")))?,
                    max_body: r.max_body.unwrap_or(cfg.server.max_body).bytes() as u64,
                    compress: r.compress.as_ref().map(|c| Box::new(c.get_ref().clone())),
                    retry_non_idempotent: r.retry_non_idempotent,
                    split: match &r.split {
                        Some(sides) => {
                            Some(Split::new(
                                sides
                                    .get_ref()
                                    .iter()
                                    .map(|(name, w)| {
                                        upstreams.get(name).cloned().map(|u| (u, *w)).ok_or_else(
                                            || fail(format!("unknown upstream `{name}`")),
                                        )
                                    })
                                    .collect::<Result<_, _>>()?,
                                r.split_force.clone(),
                                r.split_sticky.clone(),
                            ))
                        }
                        None => None,
                    },
                    mirror: match &r.mirror {
                        Some(m) => {
                            let m = m.get_ref();
                            let up = upstreams.get(&m.upstream).cloned().ok_or_else(|| {
                                fail(format!("unknown upstream `{}`", m.upstream))
                            })?;
                            Some(Mirror::new(up, m.percent, m.max_body.bytes()))
                        }
                        None => None,
                    },
                },
            ));
        }

        let mut tls = Vec::with_capacity(cfg.listeners.len());
        for l in &cfg.listeners {
            let l = l.get_ref();
            tls.push(match &l.tls {
                Some(t) => Some(TlsAcceptor::from(
                    crate::server::tls::server_config(t, |p| loaded.resolve(p), l.http2)
                        .map_err(|e| fail(e.to_string()))?,
                )),
                None => None,
            });
        }

        // An unchanged `[tracing]` keeps its exporter and queue.
        let tracer = match &cfg.tracing {
            Some(t) => Some(
                match previous
                    .and_then(|p| p.tracer.clone())
                    .filter(|old| old.config == *t.get_ref())
                {
                    Some(same) => same,
                    None => Tracer::start(t.get_ref()).map_err(|e| fail(e.to_string()))?,
                },
            ),
            None => None,
        };
        crate::telemetry::metrics::count_requests(cfg.metrics.enabled);
        Ok(Runtime {
            tracer,
            generation,
            access: cfg.log.access.then(|| Arc::new(access_format(&cfg.log))),
            metrics: cfg.metrics.enabled,
            log_phase,
            body_read_timeout: cfg.server.body_read_timeout,
            trusted: crate::client_ip::TrustedProxies::new(
                cfg.server.trusted_proxies.iter().map(|c| c.0).collect(),
                cfg.server.client_ip_header,
            ),
            router: Router::new(routes),
            upstreams,
            modules: plugins.modules,
            tls,
            loaded,
        })
    }
}

fn route_spec(r: &config::Route) -> RouteSpec {
    RouteSpec {
        hosts: r.hosts.iter().map(|h| h.as_str().to_string()).collect(),
        path: match (&r.path, &r.path_prefix) {
            (Some(p), _) => PathMatch::Pattern(p.get_ref().as_str().to_string()),
            (None, Some(p)) => PathMatch::Prefix(p.get_ref().as_str().to_string()),
            (None, None) => PathMatch::Any,
        },
        // The config types were checked when read, so these conversions cannot fail.
        methods: r
            .methods
            .iter()
            .filter_map(|m| Method::from_bytes(m.as_str().as_bytes()).ok())
            .collect(),
        headers: r
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.as_str().as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect(),
        query: r
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        priority: r.priority,
    }
}

/// State shared by every connection: the current runtime, swapped whole on reload.
pub struct Shared {
    pub current: ArcSwap<Runtime>,
    pub plugins: Arc<PluginHost>,
    pub config_path: PathBuf,
    /// The listeners' addresses as bound (a port 0 in the config is the one the system gave).
    pub listeners: Vec<std::net::SocketAddr>,
    draining: AtomicBool,
    pub(crate) reload_lock: tokio::sync::Mutex<()>,
    /// The last reloads tried, with their errors.
    pub reloads: crate::telemetry::reloads::History,
}

impl Shared {
    pub fn new(
        runtime: Runtime,
        config_path: PathBuf,
        plugins: Arc<PluginHost>,
        listeners: Vec<std::net::SocketAddr>,
    ) -> Arc<Self> {
        Arc::new(Shared {
            current: ArcSwap::from_pointee(runtime),
            plugins,
            config_path,
            listeners,
            draining: AtomicBool::new(false),
            reload_lock: tokio::sync::Mutex::new(()),
            reloads: Default::default(),
        })
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

fn access_format(log: &config::Log) -> access::Format {
    let fields = match &log.access_fields {
        Some(names) => names
            .get_ref()
            .iter()
            .filter_map(|f| access::field_bit(f))
            .fold(0, |all, bit| all | bit),
        None => u32::MAX,
    };
    access::Format {
        json: log.format.json(),
        fields,
        sample: log.access_sample,
    }
}
