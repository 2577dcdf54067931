//! Routes answered by a component instead of an upstream (the Spin model): a standard
//! `wasi:http/incoming-handler` component, named by a route's `handler`. It runs after the
//! route's plugin chain, under the same sandbox as plugins (memory cap, CPU deadline, grants),
//! with a pool of live instances reused across requests, and it is hot-swapped with its file
//! like any plugin. Its outbound `wasi:http` calls reach only the upstreams its definition
//! lists in `http` (`outbound.rs`).

mod outbound;

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, Scheme};
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::error::{CallError, Failure};
use super::idle::Idle;
use super::module::Module;
use super::sandbox::{self, Sandbox};
use super::settings::Env;
use crate::upstream::{Body, BoxError};

/// The response body a handler streams; it ends when the handler has written it all.
pub type HandlerBody = UnsyncBoxBody<Bytes, BoxError>;

/// The state of a handler instance's store.
pub struct HandlerState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    sandbox: Sandbox,
    outbound: outbound::Outbound,
}

impl WasiView for HandlerState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HandlerState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Why a handler gave no response.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// It trapped, ran out of time or memory, or could not start.
    #[error("{0}")]
    Failed(Failure),
    /// It answered with a `wasi:http` error code instead of a response.
    #[error("answered with the error {0:?}")]
    Answered(ErrorCode),
    /// It returned without answering.
    #[error("returned without setting a response")]
    Silent,
    /// It did not finish within its `request_timeout`.
    #[error("did not answer within {0:?} (request_timeout)")]
    TimedOut(std::time::Duration),
}

impl HandlerError {
    /// What the client is told: the kind, not the trap's details (those go to the log).
    pub fn summary(&self) -> &'static str {
        match self {
            HandlerError::Failed(f) => f.summary(),
            HandlerError::Answered(_) => "answered with an error",
            HandlerError::Silent => "returned without a response",
            HandlerError::TimedOut(_) => "did not answer in time",
        }
    }
}

/// A live instance, between requests.
struct Warm {
    store: Store<HandlerState>,
    proxy: Proxy,
}

/// One route's handler: the component, its settings, and its idle instances.
pub struct Handler {
    pub route: Arc<str>,
    pub env: Arc<Env>,
    pre: ProxyPre<HandlerState>,
    idle: Idle<Warm>,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("plugin", &self.env.name)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}

impl Handler {
    /// Starts a first instance, so a component that cannot start fails at load, not on a
    /// request.
    pub async fn new(
        route: Arc<str>,
        module: &Module,
        env: Arc<Env>,
    ) -> Result<Arc<Handler>, CallError> {
        let pre = module.handler().cloned().ok_or(CallError::NotAHandler)?;
        let handler = Arc::new(Handler {
            route,
            idle: Idle::new(&env),
            env,
            pre,
        });
        let warm = handler.start().await.map_err(|failure| CallError::Failed {
            what: "instantiate",
            failure,
        })?;
        handler.idle.give_back(warm);
        Ok(handler)
    }

    pub fn name(&self) -> &str {
        &self.env.name
    }

    /// Answers `req`. The response head comes back as soon as the handler sets it; its body
    /// streams while the handler keeps running, on a task of its own that returns the
    /// instance to the pool when the handler is done.
    pub async fn serve(
        self: &Arc<Self>,
        req: Request<Body>,
        tls: bool,
    ) -> Result<Response<HandlerBody>, HandlerError> {
        let mut warm = match self.idle.take() {
            Some(w) => w,
            None => self.start().await.map_err(HandlerError::Failed)?,
        };
        let (tx, rx) = oneshot::channel();
        let scheme = if tls { Scheme::Https } else { Scheme::Http };
        let req = req.map(|b| {
            b.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
                .boxed_unsync()
        });
        let data = warm.store.data_mut();
        data.sandbox.arm(true);
        let handles = data
            .http()
            .new_incoming_request(scheme, req)
            .and_then(|req| Ok((req, data.http().new_response_outparam(tx)?)));
        let (req, out) = handles.map_err(|e| HandlerError::Failed(Failure::Trap(e.to_string())))?;
        warm.store.set_epoch_deadline(1);
        let timeout = self.env.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        let me = self.clone();
        let task = tokio::spawn(async move {
            let handle = warm.proxy.wasi_http_incoming_handler();
            let called =
                tokio::time::timeout_at(deadline, handle.call_handle(&mut warm.store, req, out));
            let failed = match called.await {
                Ok(Ok(())) => {
                    me.idle.give_back(warm);
                    return Ok(());
                }
                Ok(Err(e)) => {
                    let failure = Failure::from_error(e, warm.store.data().sandbox.refused());
                    failure.count(me.name(), &me.route, "closed");
                    HandlerError::Failed(failure)
                }
                // Dropping the call drops the instance and cuts the body it was writing.
                Err(_) => HandlerError::TimedOut(timeout),
            };
            tracing::warn!(plugin = %me.name(), route = %me.route, "handler {failed}");
            Err(failed)
        });
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(resp))) => Ok(resp.map(|b| b.map_err(BoxError::from).boxed_unsync())),
            Ok(Ok(Err(code))) => Err(HandlerError::Answered(code)),
            // The handler dropped the out-parameter: it finished or failed without answering.
            Ok(Err(_)) => match task.await {
                Ok(Ok(())) => Err(HandlerError::Silent),
                Ok(Err(e)) => Err(e),
                Err(e) => Err(HandlerError::Failed(Failure::Trap(e.to_string()))),
            },
            Err(_) => {
                task.abort();
                Err(HandlerError::TimedOut(timeout))
            }
        }
    }

    async fn start(&self) -> Result<Warm, Failure> {
        let state = HandlerState {
            wasi: self.env.grants.wasi_ctx(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            sandbox: Sandbox::new(&self.env.limits),
            outbound: outbound::Outbound::new(self.env.clone()),
        };
        let mut store = Store::new(self.pre.engine(), state);
        sandbox::install(&mut store, |s| &mut s.sandbox);
        match self.pre.instantiate_async(&mut store).await {
            Ok(proxy) => Ok(Warm { store, proxy }),
            Err(e) => Err(Failure::from_error(e, store.data().sandbox.refused())),
        }
    }
}
