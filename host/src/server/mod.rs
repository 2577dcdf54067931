//! Listeners: accept, terminate TLS, speak HTTP/1.1 or HTTP/2 (ALPN, or prior knowledge on plain
//! TCP), hand each request to the proxy, and drain connections on shutdown.

mod conn;
mod limit;
mod proxy_protocol;
mod redirect;
pub mod tls;
pub mod trim;

pub use conn::Deadlines;
pub use limit::ConnectionLimits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

use conn::{Activity, Guarded, Tracked};
use limit::Permits;

use crate::config::{Listener, Server};
use crate::proxy::{self, ConnInfo};
use crate::runtime::Shared;
use crate::telemetry::connections::ListenerStats;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listening socket with a deep backlog and address reuse, so a restart can rebind at once.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    TcpListener::from_std(socket.into())
}

/// The HTTP settings of one listener. Head and idle deadlines are the socket guard's
/// (`conn.rs`), so hyper's own header timer is off.
pub fn http_builder(listener: &Listener, server: &Server) -> auto::Builder<TokioExecutor> {
    let max_head = server
        .max_header_size
        .bytes()
        .max(crate::config::MIN_HEADER_SIZE);
    let mut b = auto::Builder::new(TokioExecutor::new());
    // hyper answers 431 itself when a head does not fit in its buffer.
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(max_head)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX))
        .keep_alive_interval(server.http2_ping_interval)
        .keep_alive_timeout(server.http2_ping_interval);
    if listener.http2 { b } else { b.http1_only() }
}

/// What every connection of a listener shares.
pub struct Serving {
    pub index: usize,
    /// Connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
    /// Every request is answered with a redirect to `https` on this port.
    pub redirect_https: Option<u16>,
    pub builder: auto::Builder<TokioExecutor>,
    pub deadlines: Deadlines,
    pub shared: Arc<Shared>,
    pub stats: Arc<ListenerStats>,
}

/// Accepts on `listener` until `stop` turns true, while the connection limits allow: at a
/// limit, new connections wait in the kernel's backlog rather than fail. Each connection is
/// registered with `graceful` so shutdown can wait for it.
pub async fn accept_loop(
    listener: TcpListener,
    serving: Arc<Serving>,
    limits: Arc<ConnectionLimits>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let permits = tokio::select! {
            p = limits.acquire(serving.index) => p,
            _ = stop.changed() => return,
        };
        let (stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(
            stream,
            client,
            serving.clone(),
            graceful.watcher(),
            permits,
        ));
    }
}

/// Waits for the client's first bytes before anything else is set up, so a connection that
/// sends nothing costs only its socket and this small task until its deadline closes it.
async fn serve_connection(
    stream: TcpStream,
    client: SocketAddr,
    serving: Arc<Serving>,
    watcher: Watcher,
    _permits: Permits,
) {
    let accepted = Instant::now();
    serving.stats.accepted();
    let deadline = accepted + serving.deadlines.header;
    if tokio::time::timeout_at(deadline, stream.readable())
        .await
        .is_err()
    {
        tracing::debug!(%client, "closed a connection that sent nothing");
        return;
    }
    let mut stream = stream;
    let client = if serving.proxy_protocol {
        // With trusted proxies listed, only they may say who the client is.
        let rt = serving.shared.current.load();
        if !rt.trusted.is_empty() && !rt.trusted.trusts(client.ip()) {
            tracing::info!(peer = %client, "closed a PROXY protocol connection from a peer that is not a trusted proxy");
            return;
        }
        match proxy_protocol::read(&mut stream, deadline).await {
            Ok(source) => source.unwrap_or(client),
            Err(e) => {
                tracing::info!(peer = %client, error = %e, "closed a connection without a valid PROXY protocol header");
                return;
            }
        }
    } else {
        client
    };
    Box::pin(serve_http(stream, client, serving, watcher, accepted)).await;
}

async fn serve_http(
    stream: TcpStream,
    client: SocketAddr,
    serving: Arc<Serving>,
    watcher: Watcher,
    accepted: Instant,
) {
    // The TLS settings in force when the connection arrived; a reload can rotate certificates.
    let acceptor = serving
        .shared
        .current
        .load()
        .tls
        .get(serving.index)
        .cloned()
        .flatten();
    let conn = ConnInfo {
        client,
        peer: client.ip(),
        tls: acceptor.is_some(),
        client_cert: None,
    };
    let result = match acceptor {
        Some(acceptor) => {
            let handshake = TLS_HANDSHAKE_TIMEOUT.min(serving.deadlines.header);
            // Counted in each arm: a `Result` kept across the match would hold a second
            // TLS stream's room in this (per-connection) future.
            let tls = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    serving.stats.handshake(true);
                    tls
                }
                Ok(Err(e)) => {
                    serving.stats.handshake(false);
                    tracing::debug!(%client, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    serving.stats.handshake(false);
                    tracing::debug!(%client, "TLS handshake timed out");
                    return;
                }
            };
            let conn = ConnInfo {
                client_cert: tls::client_subject(tls.get_ref().1).map(Arc::from),
                ..conn
            };
            serve_io(tls, conn, &serving, watcher, accepted).await
        }
        None => serve_io(stream, conn, &serving, watcher, accepted).await,
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}

async fn serve_io<IO>(
    io: IO,
    conn: ConnInfo,
    serving: &Serving,
    watcher: Watcher,
    accepted: Instant,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let shared = serving.shared.clone();
    let redirect = serving.redirect_https;
    let activity = Arc::new(Activity::default());
    let requests = activity.clone();
    let service = service_fn(move |req| {
        // Each request runs to its end on the config it started with; a redirect needs none.
        let to = redirect.ok_or_else(|| shared.current.load_full());
        let in_flight = requests.start();
        let conn = conn.clone();
        async move {
            let resp = match to {
                Ok(port) => redirect::to_https(&req, port),
                // Boxed: hyper keeps the service's future inline in every connection, idle
                // ones included, and the request path's state is several KiB.
                Err(rt) => Box::pin(proxy::handle(rt, conn, req)).await,
            };
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                in_flight.upgraded();
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| Tracked::new(b, in_flight)))
        }
    });
    let open = serving.stats.open();
    let io = Guarded::new(io, activity, serving.deadlines, accepted, open);
    let conn = serving
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    watcher.watch(conn).await
}
