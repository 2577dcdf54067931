//! Test plugin: panics (a Wasm trap) when the request has the configured header; passes
//! everything else, so the next request shows the gateway recovered. The header's value
//! `print` writes a line to stderr and passes; `sleep` waits on a WASI clock, which a plugin
//! may not do. With `in_log`, it panics
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
        match req.header(&self.when_header).as_deref() {
            None => {}
            Some("print") => eprintln!("trap plugin: printed to stderr"),
            Some("sleep") => std::thread::sleep(std::time::Duration::from_millis(1)),
            Some(_) => panic!("asked to trap"),
        }
        req.append_header("x-trap-passed", "1").into()
    }
}
