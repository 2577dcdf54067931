//! `wasmgate plugin build [DIR]`: builds the plugin project in DIR into `DIR/<name>.wasm` with
//! the right tools and settings for its language, installing them in the project first when
//! missing (a virtualenv in `.venv`, `npm install`, the `wasm32-wasip2` target).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{Lang, ScaffoldError};

/// Builds the project in `dir`; returns the `.wasm` written.
pub fn build(dir: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let lang = if dir.join("Cargo.toml").is_file() {
        Lang::Rust
    } else if dir.join("app.py").is_file() {
        Lang::Python
    } else if dir.join("plugin.js").is_file() {
        Lang::Js
    } else {
        return Err(ScaffoldError::NotAPlugin(dir));
    };
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".into());
    let out = dir.join(format!("{name}.wasm"));
    match lang {
        Lang::Rust => {
            // Ignored when the target is already there or rustup is absent: cargo then says.
            let _ = Command::new("rustup")
                .args(["target", "add", "wasm32-wasip2"])
                .output();
            run(
                Command::new("cargo")
                    .args(["build", "--target", "wasm32-wasip2", "--profile", "plugin"])
                    .current_dir(&dir),
                "cargo build",
            )?;
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join("target"));
            let built = target
                .join("wasm32-wasip2/plugin")
                .join(format!("{}.wasm", name.replace('-', "_")));
            replace(&built, &out)?;
        }
        Lang::Python => {
            let venv = dir.join(".venv");
            if !venv.join("bin/wasmgate-plugin-build").is_file() {
                run(
                    Command::new("python3").arg("-m").arg("venv").arg(&venv),
                    "python3 -m venv",
                )?;
                run(
                    Command::new(venv.join("bin/pip"))
                        .args(["install", "-q", "--disable-pip-version-check", "-e"])
                        .arg(sdk.join("python")),
                    "pip install (the Python SDK and componentize-py)",
                )?;
            }
            run(
                Command::new(venv.join("bin/wasmgate-plugin-build"))
                    .arg(dir.join("app.py"))
                    .arg("-o")
                    .arg(&out),
                "wasmgate-plugin-build",
            )?;
        }
        Lang::Js => {
            if !sdk.join("js/node_modules").is_dir() {
                run(
                    Command::new("npm")
                        .args(["ci", "--no-audit", "--no-fund"])
                        .current_dir(sdk.join("js")),
                    "npm ci (the JavaScript SDK's tools)",
                )?;
            }
            if !dir.join("node_modules").is_dir() {
                run(
                    Command::new("npm")
                        .args(["install", "--no-audit", "--no-fund"])
                        .current_dir(&dir),
                    "npm install",
                )?;
            }
            run(
                Command::new("node")
                    .arg(sdk.join("js/build.js"))
                    .arg(dir.join("plugin.js"))
                    .arg("-o")
                    .arg(&out),
                "the JavaScript build",
            )?;
        }
    }
    Ok(out)
}

fn run(cmd: &mut Command, step: &str) -> Result<(), ScaffoldError> {
    let status = cmd.status().map_err(|source| ScaffoldError::Run {
        step: step.to_string(),
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(ScaffoldError::Step {
            step: step.to_string(),
            status: status.to_string(),
        })
    }
}

/// Copies through a temporary name, so a gateway watching `to` never loads half a file.
fn replace(from: &Path, to: &Path) -> Result<(), ScaffoldError> {
    let tmp = to.with_extension("wasm.partial");
    std::fs::copy(from, &tmp)
        .and_then(|_| std::fs::rename(&tmp, to))
        .map_err(|source| ScaffoldError::Write {
            path: to.to_path_buf(),
            source,
        })
}
