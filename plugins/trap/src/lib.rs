//! Test plugin: panics (a Wasm trap) when the request has the configured header; passes
//! everything else, so the next request shows the gateway recovered. With `in_log`, it panics
//! in the log phase instead (after every request), or loops there with `in_log = "loop"`.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trap {
    #[serde(default = "x_trap")]
    when_header: String,
    /// `"panic"` or `"loop"`: fail in the log phase instead.
    #[serde(default)]
    in_log: Option<String>,
}

fn x_trap() -> String {
    "x-trap".into()
}

#[plugin]
impl Plugin for Trap {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        match c.in_log.as_deref() {
            None | Some("panic" | "loop") => Ok(c),
            Some(other) => Err(format!("`in_log` = `{other}`: use \"panic\" or \"loop\"")),
        }
    }

    fn phases(&self, written: Phases) -> Phases {
        if self.in_log.is_some() {
            Phases::LOG
        } else {
            written - Phases::LOG
        }
    }

    fn on_log(&self, _entry: &LogEntry) {
        if self.in_log.as_deref() == Some("loop") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        panic!("asked to trap in the log phase");
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        if req.header(&self.when_header).is_some() {
            panic!("asked to trap");
        }
        req.append_header("x-trap-passed", "1").into()
    }
}
