//! Test plugin: reports in request headers what the sandbox lets it reach — an environment
//! variable, a file — and how many calls its instance has served (which shows whether instances
//! are reused or fresh per request).

use std::cell::Cell;
use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    env: String,
    file: String,
    #[serde(skip)]
    calls: Cell<u64>,
}

#[plugin]
impl Plugin for Probe {
    fn on_request_headers(&self, req: &Request) -> Action {
        self.calls.set(self.calls.get() + 1);
        let env = std::env::var(&self.env).unwrap_or_else(|_| "(none)".into());
        let file = std::fs::read_to_string(&self.file)
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|_| "(denied)".into());
        req.set_header("x-probe-env", &env)
            .and_then(|()| req.set_header("x-probe-file", &file))
            .and_then(|()| req.set_header("x-probe-calls", &self.calls.get().to_string()))
            .into()
    }
}
