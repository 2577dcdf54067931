//! A plugin definition's settings as the runtime uses them: limits, fail mode, what the sandbox
//! grants, and the capabilities' backends. Built once per config generation and shared by every
//! instance of the plugin.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

pub use crate::config::{FailMode, Isolation, OverLimit};
use crate::store::Store;
use crate::upstream::Upstream;

/// How often the engine's epoch advances; CPU deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub memory: usize,
}

impl Limits {
    pub fn ticks(&self) -> u64 {
        let t = self.timeout.as_micros().div_ceil(TICK.as_micros());
        u64::try_from(t).unwrap_or(u64::MAX).max(1)
    }
}

/// What the sandbox opens up; nothing unless the config says so.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    pub env: Vec<(String, String)>,
    pub stderr: bool,
    /// (host folder, path in the guest), read-only.
    pub dirs: Vec<(PathBuf, String)>,
}

impl Grants {
    /// The WASI context of a new instance: what these grants open, nothing else.
    pub fn wasi_ctx(&self) -> WasiCtx {
        let mut b = WasiCtxBuilder::new();
        b.envs(&self.env);
        if self.stderr {
            b.inherit_stderr();
        }
        for (host, guest) in &self.dirs {
            // Checked at load; a folder that vanished since is simply not offered.
            let _ = b.preopened_dir(host, guest, FsPerms::ReadOnly);
        }
        b.build()
    }
}

/// Everything an instance of one plugin definition needs from the host.
pub struct Env {
    pub name: Arc<str>,
    pub limits: Limits,
    pub grants: Grants,
    pub fail: FailMode,
    pub isolation: Isolation,
    /// Handlers: the longest one may take to answer, body included.
    pub request_timeout: Duration,
    /// Idle instances kept for reuse.
    pub pool_size: usize,
    /// Largest body a body phase buffers.
    pub body_limit: usize,
    /// Whether a response over `body_limit` goes on without the body phase.
    pub over_limit: OverLimit,
    pub store: Store,
    /// This process's own store, for `local-incr` whatever `store` is.
    pub local: Arc<crate::store::MemoryStore>,
    /// The generation's upstreams, for `set-upstream`.
    pub upstreams: Arc<BTreeMap<String, Arc<Upstream>>>,
    /// Upstreams this plugin may call through `http-client`.
    pub http_allow: Vec<String>,
}
