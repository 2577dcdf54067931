//! The glue between the generated guest bindings and a [`Plugin`]: the instance's plugin value
//! lives here between calls. Used by the code [`crate::plugin`] generates.

use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;

use crate::bindings::wasmgate::plugin::types as wit;
use crate::{Action, Answer, Phases, Plugin, Request, Response};

thread_local! {
    static PLUGIN: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// The phases the host calls: those the impl writes and the config needs, plus `RAW_BODY` if
/// the plugin asks for it.
pub(crate) fn phases<P: Plugin>(plugin: &P) -> Phases {
    plugin.phases(P::__PHASES) & (P::__PHASES | Phases::RAW_BODY)
}

/// Calls into `P` on behalf of the host.
pub struct Adapter<P>(PhantomData<P>);

fn with<P: Plugin>(f: impl FnOnce(&P) -> Action) -> wit::Action {
    PLUGIN
        .with(|slot| {
            let slot = slot.borrow();
            match slot.as_ref().and_then(|b| b.downcast_ref::<P>()) {
                Some(p) => f(p),
                None => Action::Respond(Answer::problem(500, "the plugin was called before init")),
            }
        })
        .into()
}

impl<P: Plugin> Adapter<P> {
    /// Parses the config, builds the plugin and reports its phases.
    pub fn init(config: String) -> Result<Phases, String> {
        // A panic becomes a trap whose text the gateway cannot see (the guest's stderr is not
        // granted by default): say what happened through the log capability first.
        #[cfg(target_arch = "wasm32")]
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload_as_str().unwrap_or("a panic without a message");
            match info.location() {
                Some(at) => crate::log::error(&format!("panicked: {message} (at {at})")),
                None => crate::log::error(&format!("panicked: {message}")),
            }
        }));
        let config: P::Config = crate::config::parse(&config)?;
        let plugin = P::new(config)?;
        let phases = phases(&plugin);
        PLUGIN.with(|slot| *slot.borrow_mut() = Some(Box::new(plugin)));
        Ok(phases)
    }

    /// The request-headers phase.
    pub fn on_request_headers(req: &wit::Request) -> wit::Action {
        with::<P>(|p| p.on_request_headers(&Request::host(req)))
    }

    /// The request-body phase.
    pub fn on_request_body(req: &wit::Request) -> wit::Action {
        with::<P>(|p| p.on_request_body(&Request::host(req)))
    }

    /// The response-headers phase.
    pub fn on_response_headers(req: &wit::Request, resp: &wit::Response) -> wit::Action {
        with::<P>(|p| p.on_response_headers(&Request::host(req), &Response::host(resp)))
    }

    /// The response-body phase.
    pub fn on_response_body(req: &wit::Request, resp: &wit::Response) -> wit::Action {
        with::<P>(|p| p.on_response_body(&Request::host(req), &Response::host(resp)))
    }

    /// The log phase.
    pub fn on_log(entry: wit::LogEntry) {
        PLUGIN.with(|slot| {
            if let Some(p) = slot.borrow().as_ref().and_then(|b| b.downcast_ref::<P>()) {
                p.on_log(&entry);
            }
        })
    }
}

/// Exports `$t` (a [`Plugin`]) as the component's `guest` interface. [`crate::plugin`] calls it;
/// call it yourself only if you set `__PHASES` by hand.
#[macro_export]
macro_rules! export_plugin {
    ($t:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::bindings::exports::wasmgate::plugin::guest::Guest;
            use $crate::bindings::wasmgate::plugin::types as wit;
            struct Export;
            impl Guest for Export {
                fn init(config: String) -> Result<$crate::Phases, String> {
                    $crate::Adapter::<$t>::init(config)
                }
                fn on_request_headers(req: &wit::Request) -> wit::Action {
                    $crate::Adapter::<$t>::on_request_headers(req)
                }
                fn on_request_body(req: &wit::Request) -> wit::Action {
                    $crate::Adapter::<$t>::on_request_body(req)
                }
                fn on_response_headers(req: &wit::Request, resp: &wit::Response) -> wit::Action {
                    $crate::Adapter::<$t>::on_response_headers(req, resp)
                }
                fn on_response_body(req: &wit::Request, resp: &wit::Response) -> wit::Action {
                    $crate::Adapter::<$t>::on_response_body(req, resp)
                }
                fn on_log(entry: wit::LogEntry) {
                    $crate::Adapter::<$t>::on_log(entry)
                }
            }
    $crate::bindings::export!(Export with_types_in $crate::bindings);
        };
    };
}
