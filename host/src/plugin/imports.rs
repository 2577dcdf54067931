//! What a plugin may import, checked on the file's bytes before compiling it: a component that
//! needs an interface the host does not provide is refused at once, naming the interface and the
//! usual fix, instead of after a compile that can take many seconds.

use wasmtime::wasmparser::{Encoding, Parser, Payload};

/// The interfaces plugins get: the contract, and WASI 0.2 (of which a plugin reaches only what
/// its `[plugins.*]` grants allow).
const PROVIDED: &[&str] = &[
    "wasmgate:plugin/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// The first top-level import of the component in `bytes` that the host does not provide.
/// `None` also for bytes that do not parse: compiling them reports why.
pub fn unprovided(bytes: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.ok()? {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return None;
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let name = import.ok()?.name.name;
                    if !PROVIDED.iter().any(|p| name.starts_with(p)) {
                        return Some(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// What to do about an import the host does not provide.
pub fn hint(interface: &str) -> &'static str {
    if interface.starts_with("wasi:http/") {
        "JavaScript: build with plugin-sdk/js (`node plugin-sdk/js/build.js`), or pass \
         componentize-js `--disable http fetch-event`; Rust: drop the dependency that uses \
         wasi:http and call upstreams through the SDK's `http` capability"
    } else {
        "build against the `plugin` world of this gateway's wit/plugin.wit and drop what \
         imports it"
    }
}
