//! The plugin runtime: one wasmtime engine for the process, plugin files compiled once (and
//! cached on disk), and per route a chain of steps, each with a pool of live instances.
//!
//! Load order for a config generation: compile (or reuse) every `[plugins.*]` file, then for
//! every route entry start a first instance and run its `init` with the entry's config. Any
//! failure refuses the whole generation, located at the entry in `gateway.toml`.

pub(crate) mod bindings;
mod cache;
mod caps;
mod chain;
pub mod compile;
mod error;
mod exchange;
mod handler;
mod idle;
mod imports;
mod instance;
mod module;
mod sandbox;
mod settings;
mod step;
mod wasi;

pub use bindings::Phases;
pub use bindings::types::LogEntry;
pub use chain::{Chain, Reply, Verdict};
pub use error::{CallError, Failure, LoadError};
pub use exchange::{Exchange, ResponseState};
pub use handler::{Handler, HandlerBody, HandlerError};
pub use instance::Phase;
pub use module::Module;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

use crate::config::{ConfigError, Loaded};
use crate::store::Store;
use crate::upstream::Upstream;
use exchange::ExchangeAccess;
use instance::HostState;
use module::Linkers;
use settings::{Env, Grants, Isolation, Limits};

/// The engine and what every plugin and handler shares; one per process.
pub struct PluginHost {
    engine: Engine,
    linkers: Linkers,
    compiler: Option<PathBuf>,
    pub store: Store,
    local: Arc<crate::store::MemoryStore>,
}

/// What a config generation's plugins compiled to.
#[derive(Default)]
pub struct Plugins {
    pub modules: Vec<Arc<Module>>,
    /// By route index; `None` for routes without plugins.
    /// One per route, in order; an empty chain for a route without plugins.
    pub chains: Vec<Arc<Chain>>,
    /// One per route, in order: the handler that answers it, if it has one.
    pub handlers: Vec<Option<Arc<Handler>>>,
}

/// The `wasmgate:plugin` imports: the exchange's resources through [`exchange::ExchangeView`], the other
/// capabilities on the store's state (`caps/`).
fn add_capabilities(l: &mut Linker<HostState>) -> wasmtime::Result<()> {
    bindings::types::add_to_linker::<_, ExchangeAccess>(l, HostState::exchange_view)?;
    bindings::kv::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    bindings::http_client::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    bindings::log::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    bindings::metrics::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    bindings::clock::add_to_linker::<_, HasSelf<_>>(l, |s| s)?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("cannot start the WebAssembly engine: {0}")]
pub struct EngineError(String);

impl PluginHost {
    /// `compiler`: the `wasmgate` binary, to compile plugins in a child process (see
    /// `compile.rs`) when the disk cache is on; `None` compiles in this process.
    pub fn new(store: Store, compiler: Option<PathBuf>) -> Result<Arc<PluginHost>, EngineError> {
        let engine =
            Engine::new(&compile::engine_config()).map_err(|e| EngineError(e.to_string()))?;
        // A std guest imports WASI even if it never uses it; with an empty `WasiCtx` these calls
        // reach nothing (no files, env, sockets or stdio unless granted).
        let linker = |direct: bool| {
            let mut linker = Linker::new(&engine);
            wasi::add_to_linker(&mut linker, direct)
                .and_then(|()| add_capabilities(&mut linker))
                .map_err(|e| EngineError(e.to_string()))?;
            Ok::<_, EngineError>(linker)
        };
        let (waiting, mut direct) = (linker(false)?, linker(true)?);
        if let Store::Memory(m) = &store {
            caps::kv::add_in_process(&mut direct, m).map_err(|e| EngineError(e.to_string()))?;
        }
        let mut handler = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut handler)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut handler))
            .map_err(|e| EngineError(e.to_string()))?;
        let linkers = Linkers {
            waiting,
            direct,
            handler,
        };
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("wasmgate-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(settings::TICK);
                    match ticker.upgrade() {
                        Some(e) => e.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| EngineError(e.to_string()))?;
        let local = match &store {
            Store::Memory(m) => m.clone(),
            Store::Redis(_) => Arc::default(),
        };
        Ok(Arc::new(PluginHost {
            engine,
            linkers,
            compiler,
            store,
            local,
        }))
    }

    /// Compiles and initializes the plugins of `loaded`. `previous` modules with unchanged
    /// content are reused as they are.
    /// Compiles one plugin file as `load` would (no cache), for `check`: why it cannot be
    /// used, if it cannot.
    pub async fn check_file(self: &Arc<Self>, path: PathBuf) -> Result<(), String> {
        let host = self.clone();
        tokio::task::spawn_blocking(move || {
            Module::load(
                &host.engine,
                &host.linkers,
                matches!(host.store, Store::Redis(_)),
                None,
                host.compiler.as_deref(),
                &path,
                &[],
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("loading failed: {e}")))
    }

    pub async fn load(
        self: &Arc<Self>,
        loaded: &Loaded,
        upstreams: &Arc<BTreeMap<String, Arc<Upstream>>>,
        previous: &[Arc<Module>],
    ) -> Result<Plugins, Vec<ConfigError>> {
        let cfg = &loaded.config;
        let mut errors = Vec::new();
        let cache = cache_dir(loaded).map(|dir| cache::DiskCache {
            dir,
            max_bytes: u64::try_from(cfg.server.plugin_cache_max.bytes()).unwrap_or(u64::MAX),
        });
        let cache = cache.map(Arc::new);
        let mut defs = BTreeMap::new();
        let mut modules = Vec::new();
        for (name, def) in &cfg.plugins {
            let d = def.get_ref();
            let path = loaded.resolve(d.file.get_ref());
            let (host, cache, known) = (self.clone(), cache.clone(), previous.to_vec());
            let started = std::time::Instant::now();
            let module = tokio::task::spawn_blocking(move || {
                Module::load(
                    &host.engine,
                    &host.linkers,
                    matches!(host.store, Store::Redis(_)),
                    cache.as_deref(),
                    host.compiler.as_deref(),
                    &path,
                    &known,
                )
            })
            .await;
            match module {
                Ok(Ok(m)) => {
                    tracing::info!(plugin = %name, file = %m.path.display(), cached = m.cached, ms = started.elapsed().as_millis() as u64, "plugin loaded");
                    modules.push(m.clone());
                    let env = self.env(name, d, m.handler().is_some(), upstreams);
                    defs.insert(name.clone(), (m, Arc::new(env)));
                }
                Ok(Err(e)) => {
                    errors.push(loaded.error_at(d.file.span(), format!("plugin `{name}`: {e}")));
                }
                Err(e) => errors.push(loaded.error_at(
                    d.file.span(),
                    format!("plugin `{name}`: loading failed: {e}"),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let mut chains = Vec::with_capacity(cfg.routes.len());
        let mut handlers = Vec::with_capacity(cfg.routes.len());
        let none = Arc::new(Chain::new(Vec::new()));
        for (i, r) in cfg.routes.iter().enumerate() {
            let route = r.get_ref();
            let route_name: Arc<str> = crate::config::route_name(route, i).into();
            // Validation made sure the handler names a defined plugin.
            let handler = match route
                .handler
                .as_ref()
                .and_then(|h| Some((h, defs.get(h.get_ref())?)))
            {
                Some((h, (module, env))) => {
                    match Handler::new(route_name.clone(), module, env.clone()).await {
                        Ok(handler) => Some(handler),
                        Err(err) => {
                            errors.push(loaded.error_at(
                                h.span(),
                                format!("route `{route_name}` handler `{}`: {err}", h.get_ref()),
                            ));
                            None
                        }
                    }
                }
                None => None,
            };
            handlers.push(handler);
            if route.plugins.is_empty() {
                chains.push(none.clone());
                continue;
            }
            let mut steps = Vec::with_capacity(route.plugins.len());
            for entry in &route.plugins {
                let e = entry.get_ref();
                // Validation made sure every entry names a defined plugin.
                let Some((module, env)) = defs.get(&e.name) else {
                    continue;
                };
                let json = serde_json::to_string(&e.config).unwrap_or_else(|_| "{}".into());
                match Step::new(route_name.clone(), module.clone(), env.clone(), json).await {
                    Ok(s) => steps.push(Arc::new(s)),
                    Err(err) => errors.push(loaded.error_at(
                        entry.span(),
                        format!("route `{route_name}` plugin `{}`: {err}", e.name),
                    )),
                }
            }
            chains.push(Arc::new(Chain::new(steps)));
        }
        if errors.is_empty() {
            Ok(Plugins {
                modules,
                chains,
                handlers,
            })
        } else {
            Err(errors)
        }
    }

    fn env(
        &self,
        name: &str,
        d: &crate::config::PluginDef,
        handler: bool,
        upstreams: &Arc<BTreeMap<String, Arc<Upstream>>>,
    ) -> Env {
        Env {
            name: name.into(),
            limits: Limits {
                timeout: d.timeout,
                memory: d.memory.bytes(),
            },
            grants: Grants {
                env: d.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                stderr: d.stderr,
                dirs: d
                    .dirs
                    .iter()
                    .map(|g| (g.host.clone(), g.guest.clone()))
                    .collect(),
            },
            fail: d.fail,
            isolation: d.isolation.unwrap_or(if handler {
                Isolation::PerRequest
            } else {
                Isolation::Pooled
            }),
            request_timeout: d.request_timeout,
            pool_size: d.pool_size,
            body_limit: d.body_limit.bytes(),
            over_limit: d.over_limit,
            store: self.store.clone(),
            local: self.local.clone(),
            upstreams: upstreams.clone(),
            http_allow: d.http.iter().map(|h| h.get_ref().clone()).collect(),
        }
    }
}

use step::Step;

/// `[server] plugin_cache`, or the user's cache folder; `None` turns the disk cache off.
fn cache_dir(loaded: &Loaded) -> Option<PathBuf> {
    if let Some(dir) = &loaded.config.server.plugin_cache {
        return (!dir.as_os_str().is_empty()).then(|| loaded.resolve(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("wasmgate").join("plugins"))
}
