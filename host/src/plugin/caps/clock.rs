//! `clock`: monotonic time for durations, wall time for timestamps and windows.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::plugin::bindings::clock::Host;
use crate::plugin::instance::HostState;

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

impl Host for HostState {
    fn monotonic_ns(&mut self) -> u64 {
        u64::try_from(start().elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn wall_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}
