//! `wasmgate plugin new` and `wasmgate plugin build`: a plugin project in Rust, Python or
//! JavaScript that builds and passes its own test out of the box, outside this repository.
//! The project uses the SDK of the checkout this gateway was built from (`--sdk` or
//! `WASMGATE_SDK` point elsewhere), so the plugin and the gateway agree on the contract.

mod build;

pub use build::build;

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "`{0}` is not a plugin name: use lowercase letters, digits and `-`, starting with a letter"
    )]
    Name(String),
    #[error("{0} already exists; pick another name or remove it")]
    Exists(PathBuf),
    #[error(
        "no plugin SDK at {0}: pass --sdk (or set WASMGATE_SDK) to the plugin-sdk folder of a \
         wasmgate checkout"
    )]
    NoSdk(PathBuf),
    #[error("{0} is not a plugin project (no Cargo.toml, app.py or plugin.js)")]
    NotAPlugin(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{step} failed ({status}); its output is above")]
    Step { step: String, status: String },
    #[error("cannot run {step}: {source}")]
    Run {
        step: String,
        source: std::io::Error,
    },
}

/// The SDK folder: `--sdk`, else `WASMGATE_SDK`, else the checkout this binary was built from.
pub fn sdk(given: Option<&Path>) -> Result<PathBuf, ScaffoldError> {
    let dir = given
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("WASMGATE_SDK").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"));
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    if dir.join("Cargo.toml").is_file() && dir.join("python").is_dir() && dir.join("js").is_dir() {
        Ok(std::fs::canonicalize(&dir).unwrap_or(dir))
    } else {
        Err(ScaffoldError::NoSdk(dir))
    }
}

/// Writes a new plugin project `name` in `parent/name`; returns its folder.
pub fn new(name: &str, lang: Lang, parent: &Path, sdk: &Path) -> Result<PathBuf, ScaffoldError> {
    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(ScaffoldError::Name(name.to_string()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let type_name: String = name
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let (files, test): (&[(&str, &str)], &str) = match lang {
        Lang::Rust => (
            &[
                ("Cargo.toml", include_str!("templates/rust/Cargo.toml")),
                ("src/lib.rs", include_str!("templates/rust/lib.rs")),
            ],
            "cargo test",
        ),
        Lang::Python => (
            &[
                ("app.py", include_str!("templates/python/app.py")),
                ("test_app.py", include_str!("templates/python/test_app.py")),
            ],
            ".venv/bin/python -m unittest (after `wasmgate plugin build`, which makes .venv)",
        ),
        Lang::Js => (
            &[
                ("package.json", include_str!("templates/js/package.json")),
                ("plugin.js", include_str!("templates/js/plugin.js")),
                (
                    "plugin.test.js",
                    include_str!("templates/js/plugin.test.js"),
                ),
            ],
            "npm test (after `wasmgate plugin build`, which runs npm install)",
        ),
    };
    let sdk_for = match lang {
        Lang::Rust => sdk.to_path_buf(),
        Lang::Python => sdk.join("python"),
        Lang::Js => sdk.join("js"),
    };
    let fill = |t: &str| {
        t.replace("{name}", name)
            .replace("{type}", &type_name)
            .replace("{sdk}", &sdk_for.display().to_string())
            .replace("{test}", test)
            .replace(
                "{lang}",
                match lang {
                    Lang::Rust => "Rust",
                    Lang::Python => "Python",
                    Lang::Js => "JavaScript",
                },
            )
    };
    let readme = ("README.md", include_str!("templates/README.md"));
    for (file, text) in files.iter().chain(std::iter::once(&readme)) {
        let path = dir.join(file);
        let write = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, fill(text)));
        write.map_err(|source| ScaffoldError::Write { path, source })?;
    }
    Ok(dir)
}
