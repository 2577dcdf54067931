//! Write wasmgate policy plugins in Rust.
//!
//! A plugin is a type that implements [`Plugin`]: it is built once per instance from its typed
//! config (the route's `config` table in `gateway.toml`), then called for the phases it
//! implements. Mark the impl with [`plugin`]; it exports the plugin and tells the gateway which
//! phases to call, so phases you do not write cost nothing.
//!
//! ```ignore
//! use wasmgate_plugin_sdk::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct AddHeader { name: String, value: String }
//!
//! #[plugin]
//! impl Plugin for AddHeader {
//!     fn on_request_headers(&self, req: &Request) -> Action {
//!         req.set_header(&self.name, &self.value).into()
//!     }
//! }
//! ```
//!
//! Without `type Config` and `new`, `#[plugin]` makes the config the plugin itself
//! (`type Config = Self`, `new` returns it): write them to check the config or build more.
//!
//! Host errors come back as values (`Result`), never as traps. To test a plugin natively, use
//! [`testing::TestHost`] with `cargo test`.
#![deny(missing_docs)]

mod action;
mod adapter;
pub mod caps;
mod config;
mod edits;
#[cfg(feature = "jmespath")]
pub mod expr;
pub mod fields;
pub mod hex;
mod identity;
pub mod media;
mod message;
mod rules;
pub mod template;
pub mod testing;
pub mod time;

/// Bindings generated from `wit/plugin.wit`; the types above wrap them.
#[doc(hidden)]
#[allow(missing_docs, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        default_bindings_module: "wasmgate_plugin_sdk::bindings",
    });
}

pub use action::{Action, Answer};
pub use caps::{clock, http, kv, log, metrics};
pub use edits::{HeaderEdits, Headers};
pub use identity::Identity;
pub use message::{Request, Response};
pub use wasmgate_plugin_sdk_macros::plugin;

/// What the log phase learns about a finished request.
pub use bindings::wasmgate::plugin::types::LogEntry;
/// The phases a plugin implements (set by [`plugin`]). Add `Phases::RAW_BODY` in
/// [`Plugin::phases`] to get bodies still gzip/br encoded.
pub use bindings::wasmgate::plugin::types::Phases;

#[doc(hidden)]
pub use adapter::Adapter;
#[doc(hidden)]
pub use serde_json;

/// Everything a plugin usually needs.
pub mod prelude {
    pub use crate::{
        Action, Answer, HeaderEdits, Identity, LogEntry, Phases, Plugin, Request, Response, plugin,
    };
    pub use crate::{clock, http, kv, log, metrics};
    pub use serde::Deserialize;
}

/// A policy plugin. Every phase defaults to "continue"; implement only those you need and mark
/// the impl with [`plugin`].
///
/// One value is made per instance; the gateway runs many instances of a plugin (one per request
/// in flight) and may replace them at any time, so keep shared state in [`kv`], not in `self`.
pub trait Plugin: Sized + 'static {
    /// The config, deserialized from the route's `config` table (a JSON object). Use
    /// `#[serde(deny_unknown_fields)]` so a typo is refused at load.
    type Config: serde::de::DeserializeOwned;

    /// Checks the config and builds the plugin. An `Err` refuses the config: the gateway names
    /// the file, route and plugin, and keeps running its previous version.
    fn new(config: Self::Config) -> Result<Self, String>;

    /// Before the request goes upstream; headers only (the body has not been read).
    fn on_request_headers(&self, _req: &Request) -> Action {
        Action::Continue
    }

    /// With the whole request body buffered ([`Request::body`]); headers can still change.
    fn on_request_body(&self, _req: &Request) -> Action {
        Action::Continue
    }

    /// When the response head arrives (or the gateway answers an error).
    fn on_response_headers(&self, _req: &Request, _resp: &Response) -> Action {
        Action::Continue
    }

    /// With the whole response body buffered ([`Response::body`]); headers can still change.
    fn on_response_body(&self, _req: &Request, _resp: &Response) -> Action {
        Action::Continue
    }

    /// After the response has been sent, off the request's path: ship logs, meter usage. It
    /// cannot change the response, and however it fails, the client never notices.
    fn on_log(&self, _entry: &LogEntry) {}

    /// The phases this configured plugin needs; by default every phase the impl writes (the
    /// `written` argument). Return fewer when the config makes a phase a no-op: the gateway then
    /// never calls it (and never buffers a body for it).
    fn phases(&self, written: Phases) -> Phases {
        written
    }

    /// Set by [`plugin`]: the phases this impl writes.
    #[doc(hidden)]
    const __PHASES: Phases;
}
