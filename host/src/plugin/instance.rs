//! One live plugin instance: its store (sandbox state, limits, the lent exchange) and the typed
//! handle to its exports. An instance serves one call at a time; the pool in `step.rs` hands
//! instances out and takes back only those that did not trap.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::{
    Component, ComponentExportIndex, Instance, Resource, ResourceTable, TypedFunc,
};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::types::LogEntry;
use super::bindings::{Action, GUEST, Phases, Plugin as Guest, PluginPre};
use super::bindings::{RequestHandle, ResponseHandle};
use super::error::{CallError, Failure};
use super::exchange::{Exchange, ExchangeView};
use super::sandbox::{self, Sandbox};
use super::settings::Env;

/// The state a plugin's store carries.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    sandbox: Sandbox,
    /// The first line of the last error the plugin logged during the call in progress: an
    /// SDK logs an exception there just before the trap it becomes.
    last_error: Option<String>,
    /// The exchange of the call in progress.
    pub exchange: Option<Box<Exchange>>,
    pub env: Arc<Env>,
}

impl HostState {
    /// Remembers `message` (its first line, shortened) as what the plugin last said went wrong.
    pub fn said(&mut self, message: &str) {
        let line = message.lines().next().unwrap_or_default();
        let cut = line.char_indices().nth(300).map_or(line.len(), |(i, _)| i);
        self.last_error = Some(line[..cut].to_string());
    }

    /// A failure of the call in progress, with what the plugin said about it.
    fn failure(&self, e: wasmtime::Error) -> Failure {
        Failure::from_error(e, self.sandbox.refused()).explained(self.last_error.as_deref())
    }

    /// The exchange of the call in progress, as the `request`/`response` resources see it.
    pub fn exchange_view(&mut self) -> ExchangeView<'_> {
        ExchangeView {
            exchange: &mut self.exchange,
            upstreams: &self.env.upstreams,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Which export a call enters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

impl Phase {
    pub fn flag(self) -> Phases {
        match self {
            Phase::RequestHeaders => Phases::REQUEST_HEADERS,
            Phase::RequestBody => Phases::REQUEST_BODY,
            Phase::ResponseHeaders => Phases::RESPONSE_HEADERS,
            Phase::ResponseBody => Phases::RESPONSE_BODY,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Phase::RequestHeaders => "request_headers",
            Phase::RequestBody => "request_body",
            Phase::ResponseHeaders => "response_headers",
            Phase::ResponseBody => "response_body",
        }
    }
}

/// The phase exports of a plugin called directly.
pub struct DirectExports {
    pub request_headers: ComponentExportIndex,
    pub request_body: ComponentExportIndex,
    pub response_headers: ComponentExportIndex,
    pub response_body: ComponentExportIndex,
}

impl DirectExports {
    /// `None` when an export is missing: the linker's own check then refuses the component.
    pub fn find(c: &Component) -> Option<DirectExports> {
        let guest = c.get_export_index(None, GUEST)?;
        let get = |name| c.get_export_index(Some(&guest), name);
        Some(DirectExports {
            request_headers: get("on-request-headers")?,
            request_body: get("on-request-body")?,
            response_headers: get("on-response-headers")?,
            response_body: get("on-response-body")?,
        })
    }
}

type RequestFn = TypedFunc<(Resource<RequestHandle>,), (Action,)>;
type ResponseFn = TypedFunc<(Resource<RequestHandle>, Resource<ResponseHandle>), (Action,)>;

/// The phase exports as typed functions, for plain synchronous calls.
struct PhaseFns {
    request_headers: RequestFn,
    request_body: RequestFn,
    response_headers: ResponseFn,
    response_body: ResponseFn,
}

impl PhaseFns {
    fn get(
        instance: &Instance,
        store: &mut Store<HostState>,
        ix: &DirectExports,
    ) -> wasmtime::Result<PhaseFns> {
        Ok(PhaseFns {
            request_headers: instance.get_typed_func(&mut *store, ix.request_headers)?,
            request_body: instance.get_typed_func(&mut *store, ix.request_body)?,
            response_headers: instance.get_typed_func(&mut *store, ix.response_headers)?,
            response_body: instance.get_typed_func(&mut *store, ix.response_body)?,
        })
    }
}

pub struct Live {
    store: Store<HostState>,
    guest: Guest,
    /// Present when the plugin imports nothing that waits: its phases are called directly,
    /// without a fiber (see `wasi.rs`).
    direct: Option<PhaseFns>,
}

impl Live {
    /// A new instance with `init(config)` already run; returns the phases it implements.
    pub async fn start(
        pre: &PluginPre<HostState>,
        direct: Option<&DirectExports>,
        env: &Arc<Env>,
        config_json: &str,
    ) -> Result<(Live, Phases), CallError> {
        let state = HostState {
            wasi: env.grants.wasi_ctx(),
            table: ResourceTable::new(),
            sandbox: Sandbox::new(&env.limits),
            last_error: None,
            exchange: None,
            env: env.clone(),
        };
        let mut store = Store::new(pre.engine(), state);
        sandbox::install(&mut store, |s| &mut s.sandbox);
        let instance = pre
            .instance_pre()
            .instantiate_async(&mut store)
            .await
            .map_err(|e| CallError::classify(e, store.data().sandbox.refused(), "instantiate"))?;
        let guest = Guest::new(&mut store, &instance)
            .map_err(|e| CallError::classify(e, false, "instantiate"))?;
        let direct = direct
            .map(|ix| PhaseFns::get(&instance, &mut store, ix))
            .transpose()
            .map_err(|e| CallError::classify(e, false, "instantiate"))?;
        store.data_mut().sandbox.arm(true);
        store.set_epoch_deadline(1);
        let phases = guest
            .wasmgate_plugin_guest()
            .call_init(&mut store, config_json)
            .await
            .map_err(|e| CallError::classify(e, store.data().sandbox.refused(), "init"))?
            .map_err(CallError::ConfigRefused)?;
        Ok((
            Live {
                store,
                guest,
                direct,
            },
            phases,
        ))
    }

    fn arm(&mut self, yields: bool) {
        let s = self.store.data_mut();
        s.sandbox.arm(yields);
        s.last_error = None;
        self.store.set_epoch_deadline(1);
    }

    /// Runs the log phase with `entry`.
    pub async fn log(&mut self, entry: &LogEntry) -> Result<(), Failure> {
        self.arm(true);
        self.guest
            .wasmgate_plugin_guest()
            .call_on_log(&mut self.store, entry)
            .await
            .map_err(|e| self.store.data().failure(e))
    }

    /// Runs one phase on `ex`. The exchange always comes back, also when the call failed.
    pub async fn call(
        &mut self,
        phase: Phase,
        ex: Box<Exchange>,
    ) -> (Box<Exchange>, Result<Action, Failure>) {
        self.store.data_mut().exchange = Some(ex);
        self.arm(self.direct.is_none());
        let s = &mut self.store;
        let (req, resp) = (Resource::new_borrow(0), Resource::new_borrow(0));
        let result = match (&self.direct, phase) {
            (Some(d), Phase::RequestHeaders) => d.request_headers.call(s, (req,)).map(|r| r.0),
            (Some(d), Phase::RequestBody) => d.request_body.call(s, (req,)).map(|r| r.0),
            (Some(d), Phase::ResponseHeaders) => {
                d.response_headers.call(s, (req, resp)).map(|r| r.0)
            }
            (Some(d), Phase::ResponseBody) => d.response_body.call(s, (req, resp)).map(|r| r.0),
            (None, phase) => self.call_async(phase).await,
        };
        let ex = self
            .store
            .data_mut()
            .exchange
            .take()
            .unwrap_or_else(|| Box::new(Exchange::detached()));
        let result = result.map_err(|e| self.store.data().failure(e));
        (ex, result)
    }

    async fn call_async(&mut self, phase: Phase) -> wasmtime::Result<Action> {
        let g = self.guest.wasmgate_plugin_guest();
        let s = &mut self.store;
        match phase {
            Phase::RequestHeaders => g.call_on_request_headers(s, Resource::new_borrow(0)).await,
            Phase::RequestBody => g.call_on_request_body(s, Resource::new_borrow(0)).await,
            Phase::ResponseHeaders => {
                g.call_on_response_headers(s, Resource::new_borrow(0), Resource::new_borrow(0))
                    .await
            }
            Phase::ResponseBody => {
                g.call_on_response_body(s, Resource::new_borrow(0), Resource::new_borrow(0))
                    .await
            }
        }
    }
}
