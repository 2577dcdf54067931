//! What can go wrong with a plugin, at load and per call.

use std::fmt;

/// Why a call into a plugin did not return normally. The instance is discarded either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Ran past its CPU deadline.
    Deadline,
    /// Tried to grow its memory past the cap.
    Memory,
    /// Any other trap (panic, unreachable, out-of-bounds access, ...).
    Trap(String),
}

impl Failure {
    /// `memory_refused`: the store's limiter refused to grow a memory during the call.
    pub fn from_error(e: wasmtime::Error, memory_refused: bool) -> Failure {
        if let Some(wasmtime::Trap::Interrupt) = e.downcast_ref::<wasmtime::Trap>() {
            return Failure::Deadline;
        }
        if memory_refused {
            return Failure::Memory;
        }
        // The trap itself, or the host's reason for ending the call; not the wasm backtrace
        // wasmtime wraps around it.
        let text = match e.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => trap.to_string(),
            None => e.root_cause().to_string(),
        };
        Failure::Trap(text.lines().next().unwrap_or("trap").to_string())
    }

    /// A trap with the plugin's own last error message (an exception's text), when it logged
    /// one during the call.
    pub fn explained(self, said: Option<&str>) -> Failure {
        match (self, said) {
            (Failure::Trap(t), Some(said)) => {
                Failure::Trap(format!("{t}; the plugin said: {said}"))
            }
            (other, _) => other,
        }
    }

    /// Counts this failure in `wasmgate_plugin_failures_total`; `fail` is the plugin's fail
    /// mode, or `log` for the log phase.
    pub fn count(&self, plugin: &str, route: &str, fail: &'static str) {
        metrics::counter!(
            "wasmgate_plugin_failures_total",
            "plugin" => plugin.to_string(),
            "route" => route.to_string(),
            "kind" => self.kind(),
            "fail" => fail,
        )
        .increment(1);
    }

    /// Label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Deadline => "deadline",
            Failure::Memory => "memory",
            Failure::Trap(_) => "trap",
        }
    }
}

impl Failure {
    /// What the client is told: the kind, not the trap's details.
    pub fn summary(&self) -> &'static str {
        match self {
            Failure::Deadline => "ran past its CPU deadline",
            Failure::Memory => "went over its memory cap",
            Failure::Trap(_) => "failed",
        }
    }
}

/// For the log: the summary, and a trap's own message.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Trap(t) => write!(f, "trapped: {t}"),
            other => f.write_str(other.summary()),
        }
    }
}

/// Why a new instance could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot {what}: {failure}")]
    Failed {
        what: &'static str,
        failure: Failure,
    },
    #[error("its `init` refused the config: {0}")]
    ConfigRefused(String),
    #[error(
        "it is a wasi:http handler, not a plugin: name it as the route's `handler = \"...\"`, not in `plugins`"
    )]
    NotAPlugin,
    #[error(
        "it is a plugin (wasmgate:plugin/guest), not a wasi:http handler: list it in the route's `plugins`, and give the route an `upstream` or a handler component"
    )]
    NotAHandler,
}

impl CallError {
    pub fn classify(e: wasmtime::Error, memory_refused: bool, what: &'static str) -> CallError {
        CallError::Failed {
            what,
            failure: Failure::from_error(e, memory_refused),
        }
    }
}

/// Why a plugin file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "{path} was built for {found}, but this gateway runs {}: rebuild it with the current SDK \
         (Rust: `cargo update -p wasmgate-plugin-sdk`, then build again; other languages: \
         generate the bindings from this gateway's wit/plugin.wit)",
        super::bindings::CONTRACT
    )]
    Version { path: String, found: String },
    #[error("{path} does not fit the wasmgate:plugin contract: {reason}")]
    Contract { path: String, reason: String },
    #[error(
        "{path} imports `{interface}`, which wasmgate does not provide (plugins get \
         wasmgate:plugin and WASI io, clocks, random, cli, filesystem and sockets): {hint}"
    )]
    Import {
        path: String,
        interface: String,
        hint: &'static str,
    },
}
