//! Compiling a component to machine code, optionally in a child process. Cranelift's working
//! memory for a large component (a JavaScript or Python plugin: 12–40 MB of Wasm) peaks near
//! 400 MB, and the allocator keeps most of it after the compile: a gateway that compiled its
//! plugins itself stayed 3–4× larger for its whole life. A child (`wasmgate plugin compile`,
//! hidden) compiles with the same engine settings, writes the artifact into the plugin cache,
//! and exits, taking that memory with it; the gateway then maps the artifact like any cache hit.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use wasmtime::{Config, Engine};

use super::cache::DiskCache;

/// The engine settings every plugin is compiled and run with; a compile child must use the same,
/// or the artifact it writes is refused (the cache key holds them).
pub fn engine_config() -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    // `perf` can name plugin functions when the JIT writes /tmp/perf-PID.map.
    if std::env::var_os("WASMGATE_PERFMAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    cfg
}

/// Compiles `bytes` in a child process running `exe`, into the cache file `out`. The bytes go
/// through the child's stdin: the file on disk may already have been replaced again.
pub fn in_child(exe: &Path, bytes: &[u8], out: &Path) -> Result<(), String> {
    let mut child = Command::new(exe)
        .args(["plugin", "compile"])
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let fed = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(bytes))
        .transpose();
    let done = child.wait_with_output().map_err(|e| e.to_string())?;
    if done.status.success() && fed.is_ok() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&done.stderr);
    Err(format!("{} ({})", said.trim(), done.status))
}

/// The child's side: a component on stdin, compiled into `out`.
pub fn compile_stdin_into(out: &Path) -> Result<(), String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading the component: {e}"))?;
    let engine = Engine::new(&engine_config()).map_err(|e| e.to_string())?;
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| format!("{e:#}"))?;
    let dir = out
        .parent()
        .ok_or_else(|| format!("{} has no folder", out.display()))?;
    let cache = DiskCache {
        dir: dir.to_path_buf(),
        max_bytes: u64::MAX,
    };
    cache
        .write(&compiled, out)
        .map_err(|e| format!("writing {}: {e}", out.display()))
}
