//! Starting and stopping the whole gateway: bind, serve, reload triggers, drain on signal.

use crate::telemetry::connections::ListenerStats;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::{ConfigErrors, Loaded};
use crate::plugin::PluginHost;
use crate::runtime::{Runtime, Shared};
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigErrors),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Engine(#[from] crate::plugin::EngineError),
    #[error("[store]: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Runs until SIGTERM or SIGINT, then drains in-flight requests (bounded by
/// `server.shutdown_timeout`) and returns.
pub async fn run(loaded: Loaded, started: std::time::Instant) -> Result<(), StartError> {
    let cfg = loaded.config.clone();
    let bind = |addr, what| {
        crate::server::bind(addr).map_err(|source| StartError::Bind { addr, what, source })
    };
    let mut listeners = Vec::new();
    for l in &cfg.listeners {
        listeners.push(bind(l.get_ref().address, "listener")?);
    }
    let admin = if cfg.admin.enabled {
        Some(bind(cfg.admin.address, "admin")?)
    } else {
        None
    };
    let demo = match &cfg.demo_backend {
        Some(d) => Some(bind(d.address, "demo_backend")?),
        None => None,
    };
    let mut term = signal(SignalKind::terminate()).map_err(StartError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(StartError::Signals)?;

    let path = loaded.path.clone();
    crate::telemetry::metrics::init();
    let dns: Vec<SocketAddr> = cfg
        .server
        .dns_servers
        .iter()
        .filter_map(|s| crate::config::dns_server(s.get_ref()))
        .collect();
    if let Err(e) = crate::upstream::init_dns(&dns) {
        // Names still resolve through the system at connect time.
        tracing::warn!(error = %e, "no DNS resolver for upstream names");
    }
    crate::upstream::init_etcd(cfg.etcd.as_ref().map(|e| e.get_ref()));
    let store = open_store(&cfg.store)?;
    // Plugins are compiled by a child process of this binary, so the compiler's memory is not
    // the gateway's for the rest of its life.
    let plugins = PluginHost::new(store, std::env::current_exe().ok())?;
    let runtime = Runtime::build(loaded, None, 1, &plugins).await?;
    // Port 0 in the config means "any free port": report what was bound.
    let bound: Vec<SocketAddr> = listeners
        .iter()
        .zip(&cfg.listeners)
        .map(|(l, c)| l.local_addr().unwrap_or(c.get_ref().address))
        .collect();
    let shared = Shared::new(runtime, path, plugins, bound.clone());
    crate::reload::on_sighup(shared.clone()).map_err(StartError::Signals)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(StartError::Signals)?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            tracing::info!("SIGUSR1: reopening the access log");
            crate::telemetry::access::reopen();
        }
    });
    crate::reload::watch_etcd(shared.clone());
    if cfg.server.watch_config
        && let Err(e) = crate::reload::watch_files(shared.clone())
    {
        tracing::warn!(error = %e, "cannot watch the config file; reload with SIGHUP or POST /reload");
    }
    if let Some(l) = demo {
        tracing::info!(address = %cfg.demo_backend.as_ref().map(|d| d.address).unwrap_or(SocketAddr::from(([0; 4], 0))), "demo backend listening");
        tokio::spawn(crate::demo::serve(l));
    }
    if let Some(l) = admin {
        let address = l.local_addr().unwrap_or(cfg.admin.address);
        tracing::info!(%address, "admin listening");
        tokio::spawn(crate::admin::serve(l, shared.clone()));
    }

    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let per_listener: Vec<Option<usize>> = cfg
        .listeners
        .iter()
        .map(|l| l.get_ref().max_connections.as_ref().map(|m| *m.get_ref()))
        .collect();
    let limits = Arc::new(crate::server::ConnectionLimits::new(
        &per_listener,
        cfg.server.max_connections,
        open_file_limit(),
    ));
    tracing::info!(
        connections = limits.total(),
        "client connections capped ([server] max_connections, or half the open-file limit)"
    );
    crate::server::trim::spawn(limits.clone());
    let deadlines = crate::server::Deadlines {
        header: cfg.server.header_read_timeout,
        idle: cfg.server.idle_timeout,
    };
    // Where `redirect_https` listeners send clients: the first TLS listener, as bound.
    let https_port = cfg
        .listeners
        .iter()
        .zip(&bound)
        .find(|(l, _)| l.get_ref().tls.is_some())
        .map(|(_, a)| a.port());
    let mut loops = Vec::new();
    for (i, (listener, l)) in listeners.into_iter().zip(&cfg.listeners).enumerate() {
        let l = l.get_ref();
        let address = bound[i];
        tracing::info!(%address, tls = l.tls.is_some(), http2 = l.http2, "listening");
        if address.ip().is_unspecified() {
            tracing::warn!(%address, "listening on every network interface, as the config asks");
        }
        let serving = Arc::new(crate::server::Serving {
            index: i,
            proxy_protocol: l.proxy_protocol,
            redirect_https: l.redirect_https.then_some(https_port).flatten(),
            builder: crate::server::http_builder(l, &cfg.server),
            deadlines,
            shared: shared.clone(),
            stats: Arc::new(ListenerStats::new(&address.to_string())),
        });
        loops.push(tokio::spawn(crate::server::accept_loop(
            listener,
            serving,
            limits.clone(),
            graceful.clone(),
            stop_rx.clone(),
        )));
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %shared.config_path.display(),
        listeners = cfg.listeners.len(),
        routes = cfg.routes.len(),
        upstreams = cfg.upstreams.len(),
        plugins = cfg.plugins.len(),
        ready_ms = started.elapsed().as_millis() as u64,
        "ready"
    );

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
    shared.start_draining();
    let _ = stop_tx.send(true);
    for l in loops {
        let _ = l.await;
    }
    let timeout = cfg.server.shutdown_timeout;
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        let open = graceful.count();
        tokio::select! {
            _ = graceful.shutdown() => tracing::info!(connections = open, "drained, exiting"),
            _ = tokio::time::sleep(timeout) => tracing::warn!(?timeout, "shutdown timeout reached; closing remaining connections"),
        }
    }
    // The last requests' spans, not lost with the process.
    if let Some(tracer) = &shared.current.load().tracer {
        tracer
            .flush(tracer.config.export_timeout.min(timeout))
            .await;
    }
    Ok(())
}

/// The soft limit on open files, which `main` has already raised as far as it may go.
fn open_file_limit() -> u64 {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, _)) => soft,
        Err(_) => 1024,
    }
}

/// The store `[store]` selects. Redis connections are opened on first use, so a Redis that is
/// down at start does not stop the gateway.
fn open_store(c: &crate::config::StoreConfig) -> Result<Store, crate::store::StoreError> {
    match c.backend {
        crate::config::StoreBackend::Memory => Ok(Store::default()),
        crate::config::StoreBackend::Redis => {
            Ok(Store::Redis(Arc::new(crate::store::RedisStore::new(
                &c.url,
                c.pool_size,
                c.timeout,
                c.connect_timeout,
                &c.prefix,
            )?)))
        }
    }
}
