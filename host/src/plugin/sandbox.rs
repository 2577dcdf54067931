//! The limits every instance runs under, plugin or handler: a memory cap that remembers
//! refusing a growth, and a CPU deadline counted in epoch ticks.

use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};

use super::settings::Limits;

/// An async call yields to the scheduler once every this many epoch ticks it runs.
const YIELD_EVERY: u64 = 5;

/// One store's limits and the deadline of the call in progress.
pub struct Sandbox {
    limiter: Limiter,
    /// Epoch ticks a call may run (the definition's `timeout`).
    ticks: u64,
    /// Epoch ticks this call may still run.
    ticks_left: u64,
    /// Whether the call in progress may yield to the scheduler now and then (async calls).
    yields: bool,
}

impl Sandbox {
    pub fn new(limits: &Limits) -> Sandbox {
        Sandbox {
            limiter: Limiter {
                inner: StoreLimitsBuilder::new()
                    .memory_size(limits.memory)
                    .trap_on_grow_failure(true)
                    .instances(64)
                    .build(),
                refused: false,
            },
            ticks: limits.ticks(),
            ticks_left: limits.ticks(),
            yields: true,
        }
    }

    /// Whether the store refused to grow a memory: that, not the text of the trap that follows,
    /// tells a memory cap hit from other traps.
    pub fn refused(&self) -> bool {
        self.limiter.refused
    }

    /// Gives the next call the full deadline.
    pub fn arm(&mut self, yields: bool) {
        self.ticks_left = self.ticks;
        self.yields = yields;
    }
}

/// Puts `store` under the sandbox `get` finds in its state.
///
/// An async call that runs long yields to the scheduler every few ticks, so a busy instance
/// that may wait never holds a worker thread for its whole deadline; a direct call keeps the
/// thread (it cannot be suspended). Not at every tick: a suspended call keeps its instance, and
/// the requests that run meanwhile start new ones, so yielding in ordinary sub-millisecond
/// calls multiplied instances (a JavaScript plugin grew the gateway by half a gigabyte). Once
/// the ticks are spent, the call traps.
pub fn install<T: 'static>(store: &mut Store<T>, get: fn(&mut T) -> &mut Sandbox) {
    store.limiter(move |s| &mut get(s).limiter);
    store.epoch_deadline_callback(move |mut ctx| {
        let s = get(ctx.data_mut());
        if s.ticks_left == 0 {
            return Ok(UpdateDeadline::Interrupt);
        }
        s.ticks_left -= 1;
        let ran = s.ticks - s.ticks_left;
        Ok(if s.yields && ran.is_multiple_of(YIELD_EVERY) {
            UpdateDeadline::Yield(1)
        } else {
            UpdateDeadline::Continue(1)
        })
    });
    store.set_epoch_deadline(1);
}

/// The store's memory and table limits, remembering whether it refused a growth.
struct Limiter {
    inner: StoreLimits,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grown = self.inner.memory_growing(current, desired, maximum);
        if !matches!(grown, Ok(true)) {
            self.refused = true;
        }
        grown
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
