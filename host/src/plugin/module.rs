//! A plugin file, compiled once: from the disk cache (`cache.rs`) when it holds this content, and
//! a reload that did not change the file reuses it from memory. Imports the host does not
//! provide are refused before compiling (`imports.rs`). What the component exports makes it
//! a plugin or a route handler.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::Phases;
use super::bindings::PluginPre;
use super::cache::DiskCache;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::error::CallError;
use super::error::LoadError;
use super::handler::HandlerState;
use super::instance::{DirectExports, HostState, Live};
use super::settings::Env;

pub struct Module {
    pub path: PathBuf,
    pub hash: [u8; 32],
    pub kind: Kind,
    /// Whether the compiled code came from the disk cache.
    pub cached: bool,
}

/// What the component is, by what it exports.
pub enum Kind {
    /// A policy plugin (`wasmgate:plugin/guest`), listed in routes' `plugins`.
    Plugin {
        pre: PluginPre<HostState>,
        /// Where the phase exports are, when the plugin imports nothing that waits and so is
        /// called directly (see `wasi.rs`); `None` runs every call on a fiber.
        direct: Option<DirectExports>,
    },
    /// A `wasi:http/incoming-handler`, named by routes' `handler`.
    Handler(ProxyPre<HandlerState>),
}

/// The linkers a component is instantiated with, by kind.
pub struct Linkers {
    /// Plugins that import something that waits (kv on Redis, http-client, files): async calls.
    pub waiting: Linker<HostState>,
    /// All other plugins: direct calls (see `wasi.rs`).
    pub direct: Linker<HostState>,
    /// Handlers: WASI with `wasi:http`.
    pub handler: Linker<HandlerState>,
}

impl Module {
    /// The file's content hash, in hex.
    pub fn sha256(&self) -> String {
        self.hash.iter().fold(String::new(), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
    }
    /// Loads `path`, reusing `known` modules with the same content and the disk cache.
    pub fn load(
        engine: &Engine,
        linkers: &Linkers,
        kv_waits: bool,
        cache: Option<&DiskCache>,
        child: Option<&Path>,
        path: &Path,
        known: &[Arc<Module>],
    ) -> Result<Arc<Module>, LoadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: shown.clone(),
            source,
        })?;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(m) = known.iter().find(|m| m.hash == hash) {
            return Ok(m.clone());
        }
        let surface = super::imports::surface(&bytes);
        if let Some(interface) = surface.unprovided {
            return Err(LoadError::Import {
                path: shown,
                hint: super::imports::hint(&interface, surface.handler),
                interface,
            });
        }
        let cache_file = cache.map(|c| c.file(engine, &hash));
        let from_cache = cache
            .zip(cache_file.as_deref())
            .and_then(|(c, f)| c.load(engine, f));
        let cached = from_cache.is_some();
        let from_child = match (from_cache, child, cache, &cache_file) {
            (Some(c), ..) => Some(c),
            (None, Some(exe), Some(cache), Some(file)) => {
                match super::compile::in_child(exe, &bytes, file) {
                    Ok(()) => {
                        let _ = cache.trim(file);
                        cache.load(engine, file)
                    }
                    // Compiled here instead, which reports an invalid component properly.
                    Err(e) => {
                        tracing::debug!(file = %shown, error = %e, "compiling in a child failed; compiling in process");
                        None
                    }
                }
            }
            _ => None,
        };
        let component = match from_child {
            Some(c) => c,
            None => {
                let c = Component::new(engine, &bytes).map_err(|e| LoadError::Invalid {
                    path: shown.clone(),
                    reason: first_line(&e),
                })?;
                if let (Some(cache), Some(file)) = (cache, &cache_file)
                    && let Err(e) = cache.store(&c, file)
                {
                    tracing::warn!(error = %e, dir = %cache.dir.display(), "cannot write the plugin cache; plugins will be compiled at every start");
                }
                c
            }
        };
        let contract = |e: wasmtime::Error| LoadError::Contract {
            path: shown.clone(),
            reason: first_line(&e),
        };
        let kind = if surface.handler {
            let pre = linkers.handler.instantiate_pre(&component);
            Kind::Handler(pre.and_then(ProxyPre::new).map_err(contract)?)
        } else {
            check_version(engine, &component, &shown)?;
            let ty = component.component_type();
            let direct = if super::wasi::waits(ty.imports(engine).map(|(n, _)| n), kv_waits) {
                None
            } else {
                DirectExports::find(&component)
            };
            let linker = if direct.is_some() {
                &linkers.direct
            } else {
                &linkers.waiting
            };
            let pre = linker.instantiate_pre(&component);
            let pre = pre.and_then(PluginPre::new).map_err(contract)?;
            Kind::Plugin { pre, direct }
        };
        Ok(Arc::new(Module {
            path: path.to_path_buf(),
            hash,
            kind,
            cached,
        }))
    }
}

impl Module {
    /// A new instance with `init(config)` already run; returns the phases it implements.
    pub async fn start(
        &self,
        env: &Arc<Env>,
        config_json: &str,
    ) -> Result<(Live, Phases), CallError> {
        match &self.kind {
            Kind::Plugin { pre, direct } => {
                Live::start(pre, direct.as_ref(), env, config_json).await
            }
            Kind::Handler(_) => Err(CallError::NotAPlugin),
        }
    }

    /// The handler's pre-instantiated component, when it is one.
    pub fn handler(&self) -> Option<&ProxyPre<HandlerState>> {
        match &self.kind {
            Kind::Handler(pre) => Some(pre),
            Kind::Plugin { .. } => None,
        }
    }
}

fn check_version(engine: &Engine, c: &Component, path: &str) -> Result<(), LoadError> {
    let ty = c.component_type();
    for (name, _) in ty.exports(engine) {
        if let Some(version) = name.strip_prefix("wasmgate:plugin/guest@")
            && version != super::bindings::VERSION
        {
            return Err(LoadError::Version {
                path: path.to_string(),
                found: format!("wasmgate:plugin@{version}"),
            });
        }
    }
    Ok(())
}

/// The error and its causes on one line (wasmtime's messages may span several).
fn first_line(e: &wasmtime::Error) -> String {
    let text = format!("{e:#}");
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
