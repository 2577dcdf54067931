//! Test plugin: allocates (and touches) memory until something stops it. The gateway's memory
//! cap must, without hurting other requests.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryBomb {}

#[plugin]
impl Plugin for MemoryBomb {
    fn on_request_headers(&self, _req: &Request) -> Action {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}
