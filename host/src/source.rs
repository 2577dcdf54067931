//! Where a config comes from: the file, and, when its `[etcd]` names a `config_prefix`, the
//! routes, upstreams and plugins kept under that prefix (see `config::parse_with_etcd`). Both
//! go through the same validation; etcd being out of reach is an error like a bad file, so a
//! running gateway keeps its last good config.

use std::path::Path;

use crate::config::{self, ConfigError, ConfigErrors, EtcdConfig, Loaded};
use crate::etcd::Etcd;

/// The prefix as keys start with it: always ending in `/`.
pub fn prefix(etcd: &EtcdConfig) -> Option<String> {
    etcd.config_prefix.as_ref().map(|p| {
        if p.ends_with('/') {
            p.clone()
        } else {
            format!("{p}/")
        }
    })
}

/// Reads and validates the whole config.
pub async fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let file = path.to_path_buf();
    let text = blocking(path, move || config::read(&file)).await?;
    let Some((etcd, prefix)) =
        config::etcd_source(&text).and_then(|e| Some((Etcd::new(&e.endpoints), prefix(&e)?)))
    else {
        let file = path.to_path_buf();
        return blocking(path, move || config::parse(&text, &file)).await;
    };
    let entries = etcd.prefix(&prefix).await.map_err(|e| {
        one(
            path,
            format!("cannot read the config kept in etcd under {prefix}: {e}"),
        )
    })?;
    let file = path.to_path_buf();
    blocking(path, move || {
        config::parse_with_etcd(&text, &file, &prefix, &entries)
    })
    .await
}

/// `load` for callers without a runtime (`wasmgate run` and `check` before theirs starts).
pub fn load_now(path: &Path) -> Result<Loaded, ConfigErrors> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(load(path)),
        Err(e) => Err(one(path, format!("cannot start the async runtime: {e}"))),
    }
}

/// File reads and checks (plugin and certificate files) stay off the async threads.
async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, ConfigErrors> + Send + 'static,
) -> Result<T, ConfigErrors> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(one(path, format!("the config task failed: {e}"))))
}

fn one(path: &Path, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError::whole(path, message)])
}
