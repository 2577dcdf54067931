//! Config reload without restart. Whatever asks for it (file change, SIGHUP, the admin call), the
//! new file is read, validated and compiled off the request path, then swapped in atomically.
//! In-flight requests keep the runtime they started with; a bad file changes nothing.

use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::{self, Config, ConfigError, ConfigErrors};
use crate::runtime::{Runtime, Shared};

/// Reloads the config file; returns the new generation, or every error (the old config stays).
pub async fn reload(shared: &Arc<Shared>) -> Result<u64, ConfigErrors> {
    let _one_at_a_time = shared.reload_lock.lock().await;
    let old = shared.current.load_full();
    let path = shared.config_path.clone();
    let prev = old.clone();
    let loaded = tokio::task::spawn_blocking(move || config::load(&path))
        .await
        .unwrap_or_else(|e| {
            Err(ConfigErrors(vec![ConfigError {
                file: shared.config_path.clone(),
                line: 0,
                column: 0,
                message: format!("reload task failed: {e}"),
            }]))
        });
    let built = match loaded {
        Ok(loaded) => {
            warn_restart_only(&prev.loaded.config, &loaded.config);
            Runtime::build(loaded, Some(&prev), prev.generation + 1, &shared.plugins).await
        }
        Err(e) => Err(e),
    };
    match built {
        Ok(rt) => {
            let generation = rt.generation;
            shared.current.store(Arc::new(rt));
            tracing::info!(generation, path = %shared.config_path.display(), "config reloaded");
            Ok(generation)
        }
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!(
                    "config reload refused, keeping generation {}: {e}",
                    old.generation
                );
            }
            Err(errors)
        }
    }
}

/// Settings bound to sockets and threads apply at the next start only; say so rather than ignore.
fn warn_restart_only(old: &Config, new: &Config) {
    let listeners = |c: &Config| {
        c.listeners
            .iter()
            .map(|l| {
                (
                    l.get_ref().address,
                    l.get_ref().tls.is_some(),
                    l.get_ref().http2,
                )
            })
            .collect::<Vec<_>>()
    };
    if listeners(old) != listeners(new)
        || old.admin != new.admin
        || old.server.workers != new.server.workers
        || old.demo_backend != new.demo_backend
        || old.log.level != new.log.level
        || old.log.format != new.log.format
    {
        tracing::warn!(
            "listeners, admin, demo_backend, workers and log level/format change only at restart; the rest of the new config applies now"
        );
    }
}

/// Watches the config file (through its folder, so editors that replace the file are seen too)
/// and reloads after changes settle. The returned watcher must be kept alive.
pub fn watch_file(shared: Arc<Shared>) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let path = shared.config_path.clone();
    let name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
            && ev
                .paths
                .iter()
                .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            let _ = tx.send(());
        }
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let a burst of writes finish before reading the file.
            tokio::time::sleep(Duration::from_millis(150)).await;
            while rx.try_recv().is_ok() {}
            let _ = reload(&shared).await;
        }
    });
    Ok(watcher)
}

/// Reloads on every SIGHUP.
pub fn on_sighup(shared: Arc<Shared>) -> std::io::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading config");
            let _ = reload(&shared).await;
        }
    });
    Ok(())
}
