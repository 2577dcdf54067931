//! Compiled plugins on disk, keyed by the file's content hash and the engine's settings, so a
//! restart loads a plugin in well under a millisecond instead of recompiling it. The folder is
//! bounded: past its size cap the entries used longest ago are removed (a hit refreshes an
//! entry's time). Only successful compiles are written, through a rename.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The pinned wasmtime (Cargo.toml); part of the key.
const WASMTIME_VERSION: &str = "48.0.8";

pub struct DiskCache {
    pub dir: PathBuf,
    /// The folder's size cap, in bytes.
    pub max_bytes: u64,
}

impl DiskCache {
    /// Where the compiled form of a file with this content hash lives.
    pub fn file(&self, engine: &Engine, content: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}.cwasm", key(engine, content)))
    }

    /// The cached component at `file`, if there is a usable one.
    #[allow(unsafe_code)]
    pub fn load(&self, engine: &Engine, file: &Path) -> Option<Component> {
        if !file.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts its input to be compiled code made by a compatible
        // engine. The cache folder is the gateway's own (created 0700, files written 0600
        // through a rename, named by content hash and engine settings), so only this process —
        // or someone who can already run code as its user — put the file there. wasmtime still
        // checks the header, version and settings, and refuses a mismatch, which lands here as
        // `None`.
        match unsafe { Component::deserialize_file(engine, file) } {
            Ok(c) => {
                // Recently used: the last to be evicted.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(file)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                Some(c)
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %format!("{e:#}"), "ignoring an unusable cached plugin");
                None
            }
        }
    }

    /// Writes `c` to `file`, then trims the folder to its cap (never removing `file`).
    pub fn store(&self, c: &Component, file: &Path) -> std::io::Result<()> {
        let bytes = c.serialize().map_err(std::io::Error::other)?;
        self.write(&bytes, file)?;
        self.trim(file)
    }

    /// Writes compiled code to `file`, through a rename.
    pub fn write(&self, bytes: &[u8], file: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, file)
    }

    /// Removes the entries used longest ago until the folder fits its cap. A running gateway
    /// keeps a removed entry it maps (the file lives on until unmapped).
    pub fn trim(&self, keep: &Path) -> std::io::Result<()> {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = std::fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort_by_key(|e| e.0);
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && std::fs::remove_file(&path).is_ok() {
                tracing::info!(file = %path.display(), bytes = len, "plugin cache over its cap: removed the entry used longest ago");
                total = total.saturating_sub(len);
            }
        }
        Ok(())
    }
}

/// Content hash + engine settings + wasmtime version: a cached artifact made by another engine
/// configuration is never offered to this one.
fn key(engine: &Engine, content: &[u8; 32]) -> String {
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
