//! Builds `plugins/` once per test binary, before the first test needs a `.wasm`: a test never
//! runs a stale plugin after a plugin or the SDK changed, even under a bare `cargo test`.
//! Incremental: about a second when nothing changed (`tests/run.sh` has built them already).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

pub fn plugins_built() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/build.sh");
        // The lint wrapper `tests/run.sh` sets for the workspace build would make cargo see
        // the plugins as changed and build them again.
        let out = Command::new("bash")
            .arg(&script)
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .output()
            .expect("run plugins/build.sh");
        assert!(
            out.status.success(),
            "plugins/build.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}
