//! Soak tests: many connections, much data or many swaps at once, asserting what they cost in
//! memory and that nothing fails. Their own target, so the end-to-end suite stays quick.

#[path = "../e2e/harness.rs"]
mod harness;

mod connections;
mod streaming;
mod swaps;
