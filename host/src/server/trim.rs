//! Giving memory back after a crowd of connections leaves. glibc's allocator keeps the pages
//! of freed buffers in its arenas (10,000 closed keep-alive connections kept ~250 MB resident);
//! once the number of open connections has fallen far from its peak, ask it to return them.

use std::sync::Arc;
use std::time::Duration;

use super::ConnectionLimits;

/// Connections that must have closed since the last trim (or the peak) to trim again.
const DROP: usize = 1_000;
const EVERY: Duration = Duration::from_secs(2);

/// Watches the open connections for as long as the gateway runs.
pub fn spawn(limits: Arc<ConnectionLimits>) {
    tokio::spawn(async move {
        let mut peak = 0;
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tick.tick().await;
            let (recent, open) = limits.take_peak();
            peak = peak.max(recent);
            if peak - open >= DROP {
                peak = open;
                let _ = tokio::task::spawn_blocking(release).await;
            }
        }
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn release() {
    // SAFETY: malloc_trim takes no pointers and only returns free pages of the allocator's own
    // heaps to the kernel; it is safe to call at any time from any thread.
    let released = unsafe { libc::malloc_trim(0) };
    tracing::debug!(
        released = released != 0,
        "returned freed memory to the system"
    );
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() {}
