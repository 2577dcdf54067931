//! Test plugin: never returns from the request phase. The gateway's CPU deadline must cut it
//! off while every other request goes on.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spin {}

#[plugin]
impl Plugin for Spin {
    fn on_request_headers(&self, _req: &Request) -> Action {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}
