//! Config reload without restart. Whatever asks for it (file change, SIGHUP, the admin call), the
//! new file is read, validated and compiled off the request path, then swapped in atomically.
//! In-flight requests keep the runtime they started with; a bad file changes nothing.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::{self, Config, ConfigErrors};
use crate::runtime::{Runtime, Shared};

/// Reloads the config; returns the new generation, or every error (the old config stays).
pub async fn reload(shared: &Arc<Shared>) -> Result<u64, ConfigErrors> {
    reload_if(shared, |_| true).await
}

/// Reloads when the config's text is no longer the running one's: for etcd, whose watch also
/// fires for writes that change nothing and once when it starts.
async fn reload_if_changed(shared: &Arc<Shared>) -> Result<u64, ConfigErrors> {
    reload_if(shared, |new| new.text != shared.current.load().loaded.text).await
}

async fn reload_if(
    shared: &Arc<Shared>,
    wanted: impl FnOnce(&config::Loaded) -> bool,
) -> Result<u64, ConfigErrors> {
    let _one_at_a_time = shared.reload_lock.lock().await;
    let old = shared.current.load_full();
    let prev = old.clone();
    let loaded = crate::source::load(&shared.config_path).await;
    let built = match loaded {
        Ok(loaded) if !wanted(&loaded) => return Ok(old.generation),
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
            shared.reloads.record(generation, Vec::new());
            tracing::info!(generation, path = %shared.config_path.display(), "config reloaded");
            Ok(generation)
        }
        Err(errors) => {
            let said = errors.0.iter().map(ToString::to_string).collect();
            shared.reloads.record(old.generation, said);
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
        || old.log.access_file != new.log.access_file
        || old.store != new.store
    {
        tracing::warn!(
            "listeners, admin, demo_backend, workers, log level/format/access_file and [store] change only at restart; the rest of the new config applies now"
        );
    }
}

/// Watches the config file and every plugin and certificate file it names (through their
/// folders, so editors and `mv` that replace a file are seen too), and reloads after changes
/// settle. A plugin file
/// swapped in place thus goes live like a config edit: compiled and initialized off the request
/// path, then swapped atomically, or refused with the old version serving.
pub fn watch_files(shared: Arc<Shared>) -> notify::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let wanted: Arc<RwLock<HashSet<PathBuf>>> = Arc::default();
    let seen = wanted.clone();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
            && let Ok(wanted) = seen.read()
            && ev.paths.iter().any(|p| wanted.contains(p))
        {
            let _ = tx.send(());
        }
    })?;
    let mut dirs = HashSet::new();
    follow(&shared, &mut watcher, &mut dirs, &wanted)?;
    tokio::spawn(async move {
        // The set of files changes with the config, also when reloaded by SIGHUP or the admin.
        let mut refresh = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                ev = rx.recv() => {
                    if ev.is_none() {
                        break;
                    }
                    // Let a burst of writes finish before reading the files.
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    while rx.try_recv().is_ok() {}
                    let _ = reload(&shared).await;
                }
                _ = refresh.tick() => {}
            }
            if let Err(e) = follow(&shared, &mut watcher, &mut dirs, &wanted) {
                tracing::warn!(error = %e, "cannot watch a plugin folder; reload with SIGHUP or POST /reload");
            }
        }
    });
    Ok(())
}

/// Points the watcher at the files the current config uses.
fn follow(
    shared: &Shared,
    watcher: &mut notify::RecommendedWatcher,
    dirs: &mut HashSet<PathBuf>,
    wanted: &RwLock<HashSet<PathBuf>>,
) -> notify::Result<()> {
    let rt = shared.current.load();
    let cfg = &rt.loaded.config;
    let mut files = vec![shared.config_path.clone()];
    files.extend(
        cfg.plugins
            .values()
            .map(|p| rt.loaded.resolve(p.get_ref().file.get_ref())),
    );
    // Certificates renewed in place (certbot, cert-manager) go live like a config edit.
    for l in &cfg.listeners {
        if let Some(tls) = &l.get_ref().tls {
            files.extend(
                crate::server::tls::files(tls)
                    .into_iter()
                    .map(|f| rt.loaded.resolve(f)),
            );
        }
    }
    for u in cfg.upstreams.values() {
        if let Some(tls) = &u.get_ref().tls {
            let f = config::upstream_tls_files(tls, &rt.loaded.path);
            files.extend(
                f.ca.into_iter()
                    .chain(f.client.into_iter().flat_map(|(c, k)| [c, k])),
            );
        }
    }
    let mut now = HashSet::new();
    for f in files {
        let dir = match f.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (Ok(dir), Some(name)) = (std::fs::canonicalize(&dir), f.file_name()) else {
            continue;
        };
        if dirs.insert(dir.clone()) {
            watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        }
        now.insert(dir.join(name));
    }
    if let Ok(mut w) = wanted.write() {
        *w = now;
    }
    Ok(())
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

/// Follows the routes, upstreams and plugins kept in etcd (`[etcd] config_prefix`): a write
/// there reloads like a file edit (validated, refused and logged when bad). A lost watch is
/// set up again, and what changed meanwhile is read then.
pub fn watch_etcd(shared: Arc<Shared>) {
    let Some(etcd) = shared.current.load().loaded.config.etcd.clone() else {
        return;
    };
    let Some(prefix) = crate::source::prefix(etcd.get_ref()) else {
        return;
    };
    let client = crate::etcd::Etcd::new(&etcd.get_ref().endpoints);
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            if let Err(e) = client.watch(&prefix, &tx).await {
                tracing::warn!(error = %e, prefix, "the etcd watch broke; setting it up again");
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // A transaction or a script writing several keys: read once they are all there.
            tokio::time::sleep(Duration::from_millis(20)).await;
            while rx.try_recv().is_ok() {}
            let _ = reload_if_changed(&shared).await;
        }
    });
}
