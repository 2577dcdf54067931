//! Connection caps: one per listener (`max_connections`) and one for the whole process, taken
//! from its open-file limit, so that accepting can never run the gateway out of descriptors.
//! At a cap the accept loop waits: new connections queue in the kernel's backlog, and are
//! accepted as others close.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Descriptors kept for everything that is not a client connection (listeners, plugin files,
/// the store, logs, the runtime's own).
const RESERVED_FDS: u64 = 128;

pub struct ConnectionLimits {
    total: Arc<Semaphore>,
    total_max: usize,
    listeners: Vec<Option<(Arc<Semaphore>, usize)>>,
    start: Instant,
    /// Seconds since `start` of the last "limit reached" warning, to log it once a minute.
    warned_at: AtomicU64,
    /// Most connections open at once since `take_peak` last asked.
    peak: AtomicUsize,
}

/// A connection's places under the caps, given back when it closes.
pub struct Permits {
    _listener: Option<OwnedSemaphorePermit>,
    _total: OwnedSemaphorePermit,
}

impl ConnectionLimits {
    /// `per_listener[i]` is listener i's `max_connections`, `total` the server's, and
    /// `open_files` the process's limit.
    pub fn new(per_listener: &[Option<usize>], total: Option<usize>, open_files: u64) -> Self {
        let total_max = match total {
            None => fd_budget(open_files),
            Some(n) => {
                let most = usize::try_from(open_files.saturating_sub(RESERVED_FDS))
                    .unwrap_or(usize::MAX)
                    .clamp(16, Semaphore::MAX_PERMITS);
                if n > most {
                    tracing::warn!(
                        max_connections = n,
                        open_files,
                        "[server] max_connections is above what the open-file limit allows; capped at {most}"
                    );
                }
                n.min(most)
            }
        };
        ConnectionLimits {
            total: Arc::new(Semaphore::new(total_max)),
            total_max,
            listeners: per_listener
                .iter()
                .map(|m| {
                    m.map(|n| {
                        let n = n.min(Semaphore::MAX_PERMITS);
                        (Arc::new(Semaphore::new(n)), n)
                    })
                })
                .collect(),
            start: Instant::now(),
            warned_at: AtomicU64::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Client connections the whole process may hold at once.
    pub fn total(&self) -> usize {
        self.total_max
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.total_max - self.total.available_permits()
    }

    /// The most connections open at once since the last call, and how many are open now.
    pub fn take_peak(&self) -> (usize, usize) {
        let open = self.open();
        (self.peak.swap(open, Ordering::Relaxed).max(open), open)
    }

    /// Waits until listener `index` may accept one more connection.
    pub async fn acquire(&self, index: usize) -> Permits {
        let listener = match self.listeners.get(index).and_then(Option::as_ref) {
            Some((sem, max)) => Some(
                self.take(sem, *max, "this listener's max_connections")
                    .await,
            ),
            None => None,
        };
        let total = self
            .take(&self.total, self.total_max, "the open-file limit")
            .await;
        self.peak.fetch_max(self.open(), Ordering::Relaxed);
        Permits {
            _listener: listener,
            _total: total,
        }
    }

    async fn take(&self, sem: &Arc<Semaphore>, max: usize, what: &str) -> OwnedSemaphorePermit {
        if let Ok(p) = sem.clone().try_acquire_owned() {
            return p;
        }
        self.warn(max, what);
        match sem.clone().acquire_owned().await {
            Ok(p) => p,
            // The semaphores are never closed.
            Err(_) => std::future::pending().await,
        }
    }

    fn warn(&self, max: usize, what: &str) {
        let now = self.start.elapsed().as_secs() + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 60)
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                limit = max,
                "connection limit reached ({what}); new connections wait in the backlog until others close"
            );
        }
    }
}

/// Each client connection may need one upstream connection too.
fn fd_budget(open_files: u64) -> usize {
    let budget = open_files.saturating_sub(RESERVED_FDS) / 2;
    usize::try_from(budget)
        .unwrap_or(usize::MAX)
        .clamp(16, Semaphore::MAX_PERMITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_leaves_room_for_upstreams_and_files() {
        assert_eq!(fd_budget(1024), 448);
        assert_eq!(fd_budget(100), 16);
        assert_eq!(fd_budget(u64::MAX), Semaphore::MAX_PERMITS);
    }

    #[tokio::test]
    async fn a_full_listener_waits_until_a_connection_closes() {
        let limits = Arc::new(ConnectionLimits::new(&[Some(2)], None, 1 << 20));
        let a = limits.acquire(0).await;
        let _b = limits.acquire(0).await;
        let waiting = tokio::spawn({
            let limits = limits.clone();
            async move { limits.acquire(0).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        assert!(waiting.await.is_ok());
    }
}
