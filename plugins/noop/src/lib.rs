//! Benchmark plugin: implements every phase and does nothing in any, so what a route pays for it
//! is the cost of calling a plugin (`cargo bench -p wasmgate --bench plugin_call`).

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Noop {}

#[plugin]
impl Plugin for Noop {
    fn on_request_headers(&self, _req: &Request) -> Action {
        Action::Continue
    }

    fn on_request_body(&self, _req: &Request) -> Action {
        Action::Continue
    }

    fn on_response_headers(&self, _req: &Request, _resp: &Response) -> Action {
        Action::Continue
    }

    fn on_response_body(&self, _req: &Request, _resp: &Response) -> Action {
        Action::Continue
    }
}
