//! Listeners: accept, terminate TLS, speak HTTP/1.1 or HTTP/2 (ALPN, or prior knowledge on plain
//! TCP), hand each request to the proxy, and drain connections on shutdown.

pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::{Listener, Server};
use crate::proxy::{self, ConnInfo};
use crate::runtime::Shared;

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

/// The HTTP settings of one listener.
pub fn http_builder(listener: &Listener, server: &Server) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .keep_alive(true);
    b.http2().timer(TokioTimer::new());
    if listener.http2 { b } else { b.http1_only() }
}

/// Accepts on `listener` until `stop` turns true. Each connection is registered with `graceful`
/// so shutdown can wait for it.
pub async fn accept_loop(
    listener: TcpListener,
    index: usize,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
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
            index,
            builder.clone(),
            shared.clone(),
            graceful.watcher(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    client: SocketAddr,
    index: usize,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    // The TLS settings in force when the connection arrived; a reload can rotate certificates.
    let acceptor = shared.current.load().tls.get(index).cloned().flatten();
    let conn = ConnInfo {
        client,
        tls: acceptor.is_some(),
    };
    let service = service_fn(move |req| {
        // Each request runs to its end on the config it started with.
        let rt = shared.current.load_full();
        async move { Ok::<_, std::convert::Infallible>(proxy::handle(rt, conn, req).await) }
    });
    let result = match acceptor {
        Some(acceptor) => {
            let tls =
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%client, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%client, "TLS handshake timed out");
                        return;
                    }
                };
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .into_owned();
            watcher.watch(conn).await
        }
        None => {
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            watcher.watch(conn).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%client, error = %e, "connection ended with an error");
    }
}
