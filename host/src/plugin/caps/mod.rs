//! The host capabilities a plugin imports, one file each. A plugin reaches nothing else: no
//! files, environment or sockets unless its definition grants them (`settings::Grants`).

mod clock;
pub(super) mod http;
pub(super) mod kv;
mod log;
mod metrics;
