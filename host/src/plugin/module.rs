//! A plugin file, compiled once: from the disk cache (`cache.rs`) when it holds this content, and
//! a reload that did not change the file reuses it from memory. Imports the host does not
//! provide are refused before compiling (`imports.rs`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::Phases;
use super::bindings::PluginPre;
use super::cache::DiskCache;
use super::error::CallError;
use super::error::LoadError;
use super::instance::{DirectExports, HostState, Live};
use super::settings::Env;

pub struct Module {
    pub path: PathBuf,
    pub hash: [u8; 32],
    pub pre: PluginPre<HostState>,
    /// Where the phase exports are, when the plugin imports nothing that waits and so is
    /// called directly (see `wasi.rs`); `None` runs every call on a fiber.
    pub direct: Option<DirectExports>,
    /// Whether the compiled code came from the disk cache.
    pub cached: bool,
}

impl Module {
    /// Loads `path`, reusing `known` modules with the same content and the disk cache.
    pub fn load(
        engine: &Engine,
        [waiting, direct]: [&Linker<HostState>; 2],
        kv_waits: bool,
        cache: Option<&DiskCache>,
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
        if let Some(interface) = super::imports::unprovided(&bytes) {
            return Err(LoadError::Import {
                path: shown,
                hint: super::imports::hint(&interface),
                interface,
            });
        }
        let cache_file = cache.map(|c| c.file(engine, &hash));
        let from_cache = cache
            .zip(cache_file.as_deref())
            .and_then(|(c, f)| c.load(engine, f));
        let cached = from_cache.is_some();
        let component = match from_cache {
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
        check_version(engine, &component, &shown)?;
        let ty = component.component_type();
        let exports = if super::wasi::waits(ty.imports(engine).map(|(n, _)| n), kv_waits) {
            None
        } else {
            DirectExports::find(&component)
        };
        let pre = if exports.is_some() { direct } else { waiting }
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| LoadError::Contract {
                path: shown.clone(),
                reason: first_line(&e),
            })?;
        Ok(Arc::new(Module {
            path: path.to_path_buf(),
            hash,
            pre,
            direct: exports,
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
        Live::start(&self.pre, self.direct.as_ref(), env, config_json).await
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
