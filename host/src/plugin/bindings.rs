//! The host side of `wit/plugin.wit`, generated once here. The `request` and `response`
//! resources map to marker types: there is one exchange in flight per store at a time, held in
//! the store's state, so a handle needs no table entry (see `exchange.rs`).

/// Marker for the `request` resource: a handle always means "the exchange of the current call".
pub struct RequestHandle;
/// Marker for the `response` resource.
pub struct ResponseHandle;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: {
        "wasmgate:plugin/kv": async,
        "wasmgate:plugin/http-client": async,
    },
    exports: { default: async },
    with: {
        "wasmgate:plugin/types.request": crate::plugin::bindings::RequestHandle,
        "wasmgate:plugin/types.response": crate::plugin::bindings::ResponseHandle,
    },
});

pub use wasmgate::plugin::types::{Action, Answer, Phases};
pub use wasmgate::plugin::{clock, http_client, kv, log, metrics, types};

/// The contract this host speaks; a component exporting another version of `guest` is refused
/// by name rather than with the linker's list of missing functions.
pub const CONTRACT: &str = "wasmgate:plugin@0.2.0";
/// The contract's version, as in `CONTRACT`.
pub const VERSION: &str = "0.2.0";
/// The exported interface holding the phases.
pub const GUEST: &str = "wasmgate:plugin/guest@0.2.0";
