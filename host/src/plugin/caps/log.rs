//! `log`: plugin messages go to the gateway's own log, tagged with the plugin's name.

use crate::plugin::bindings::log::{Host, Level};
use crate::plugin::instance::HostState;

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = &*self.env.name;
        match level {
            Level::Trace => tracing::trace!(plugin, "{message}"),
            Level::Debug => tracing::debug!(plugin, "{message}"),
            Level::Info => tracing::info!(plugin, "{message}"),
            Level::Warn => tracing::warn!(plugin, "{message}"),
            Level::Error => {
                tracing::error!(plugin, "{message}");
                self.said(&message);
            }
        }
    }
}
