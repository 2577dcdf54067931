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

/// The export that makes a component a route handler rather than a plugin.
pub const HANDLER_EXPORT: &str = "wasi:http/incoming-handler@";

/// What the file's top-level imports and exports say, read before compiling it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Surface {
    /// It exports `wasi:http/incoming-handler`: a route handler, which may also import the
    /// rest of `wasi:http`.
    pub handler: bool,
    /// The first import the host does not provide to a component of its kind.
    pub unprovided: Option<String>,
}

/// The [`Surface`] of the component in `bytes`; the default for bytes that do not parse
/// (compiling them reports why).
pub fn surface(bytes: &[u8]) -> Surface {
    let mut depth = 0usize;
    let (mut imports, mut handler) = (Vec::new(), false);
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Surface::default();
        };
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding != Encoding::Component {
                    return Surface::default();
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader.into_iter().flatten() {
                    imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                handler |= reader
                    .into_iter()
                    .flatten()
                    .any(|e| e.name.name.starts_with(HANDLER_EXPORT));
            }
            _ => {}
        }
    }
    // A handler gets WASI, `wasi:http` included; the plugin contract is not linked for it.
    let provided = |name: &str| match handler {
        true => {
            name.starts_with("wasi:")
                && (name.starts_with("wasi:http/") || PROVIDED.iter().any(|p| name.starts_with(p)))
        }
        false => PROVIDED.iter().any(|p| name.starts_with(p)),
    };
    Surface {
        handler,
        unprovided: imports.into_iter().find(|n| !provided(n)),
    }
}

/// What to do about an import the host does not provide to a component of this kind.
pub fn hint(interface: &str, handler: bool) -> &'static str {
    if handler {
        "a handler gets wasi:http and WASI io, clocks, random, cli, filesystem and sockets; \
         build it for the `wasi:http/proxy` world and drop what imports the rest"
    } else if interface.starts_with("wasi:http/") {
        "JavaScript: build with plugin-sdk/js (`node plugin-sdk/js/build.js`), or pass \
         componentize-js `--disable http fetch-event`; Rust: drop the dependency that uses \
         wasi:http and call upstreams through the SDK's `http` capability. A component that \
         answers requests itself exports wasi:http/incoming-handler and is a route's `handler`"
    } else {
        "build against the `plugin` world of this gateway's wit/plugin.wit and drop what \
         imports it"
    }
}
