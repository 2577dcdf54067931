//! Test plugin: panics (a Wasm trap) when the request has the configured header; passes
//! everything else, so the next request shows the gateway recovered.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trap {
    #[serde(default = "x_trap")]
    when_header: String,
}

fn x_trap() -> String {
    "x-trap".into()
}

#[plugin]
impl Plugin for Trap {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        Ok(c)
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        if req.header(&self.when_header).is_some() {
            panic!("asked to trap");
        }
        req.append_header("x-trap-passed", "1").into()
    }
}
