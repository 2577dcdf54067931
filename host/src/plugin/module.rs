//! A plugin file, compiled once. Compiled code is cached on disk keyed by the file's content hash
//! and the engine's settings, so a restart loads it in well under a millisecond instead of
//! recompiling, and a reload that did not change the file reuses it from memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use super::bindings::Phases;
use super::bindings::PluginPre;
use super::error::CallError;
use super::error::LoadError;
use super::instance::{DirectExports, HostState, Live};
use super::settings::Env;

/// The pinned wasmtime (Cargo.toml); part of the cache key.
const WASMTIME_VERSION: &str = "48.0.8";

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
        cache_dir: Option<&Path>,
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
        let cache_file = cache_dir.map(|d| d.join(format!("{}.cwasm", cache_key(engine, &hash))));
        let from_cache = cache_file.as_deref().and_then(|f| load_cached(engine, f));
        let cached = from_cache.is_some();
        let component = match from_cache {
            Some(c) => c,
            None => {
                let c = Component::new(engine, &bytes).map_err(|e| LoadError::Invalid {
                    path: shown.clone(),
                    reason: first_line(&e),
                })?;
                if let (Some(dir), Some(file)) = (cache_dir, &cache_file)
                    && let Err(e) = store_cached(&c, dir, file)
                {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot write the plugin cache; plugins will be compiled at every start");
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

/// Content hash + engine settings + wasmtime version: a cached artifact made by another engine
/// configuration is never offered to this one.
fn cache_key(engine: &Engine, content: &[u8; 32]) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let mut d = Sha256::new();
    d.update(content);
    d.update(h.finish().to_le_bytes());
    d.update(WASMTIME_VERSION.as_bytes());
    d.update(env!("CARGO_PKG_VERSION").as_bytes());
    d.finalize()
        .iter()
        .take(20)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[allow(unsafe_code)]
fn load_cached(engine: &Engine, file: &Path) -> Option<Component> {
    if !file.is_file() {
        return None;
    }
    // SAFETY: `deserialize_file` trusts its input to be compiled code made by a compatible
    // engine. The cache folder is the gateway's own (created 0700, files written 0600 through
    // a rename, named by content hash and engine settings), so only this process — or someone
    // who can already run code as its user — put the file there. wasmtime still checks the
    // header, version and settings, and refuses a mismatch, which lands here as `None`.
    match unsafe { Component::deserialize_file(engine, file) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %first_line(&e), "ignoring an unusable cached plugin");
            None
        }
    }
}

fn store_cached(c: &Component, dir: &Path, file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let bytes = c.serialize().map_err(std::io::Error::other)?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, file)
}
