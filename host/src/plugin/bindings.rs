//! The host side of `wit/plugin.wit`, generated once here. The `request` and `response`
//! resources map to marker types: there is one exchange in flight per store at a time, held in
//! the store's state, so a handle needs no table entry (see `exchange.rs`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: {
        "wasmgate:plugin/kv": async,
        "wasmgate:plugin/http-client": async,
    },
    exports: { default: async },
    with: {
        "wasmgate:plugin/types.request": super::exchange::RequestHandle,
        "wasmgate:plugin/types.response": super::exchange::ResponseHandle,
    },
});

pub use wasmgate::plugin::types::{Action, Answer, Phases};
pub use wasmgate::plugin::{clock, http_client, kv, log, metrics, types};
