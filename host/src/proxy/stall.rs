//! A timer for streams that stop moving: it runs only while the stream is waited on, restarts
//! after each piece of data, and costs nothing for bodies that are ready when polled.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

pub struct StallTimer {
    timeout: Duration,
    /// Made on the first wait, then reset: most bodies never wait.
    sleep: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl StallTimer {
    pub fn new(timeout: Duration) -> Self {
        StallTimer {
            timeout,
            sleep: None,
            waiting: false,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The stream yielded something: the next wait starts a new period.
    pub fn progress(&mut self) {
        self.waiting = false;
    }

    /// The stream has nothing yet: `Ready` once it has had nothing for the whole timeout.
    pub fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = Instant::now() + self.timeout;
        let sleep = match &mut self.sleep {
            Some(s) => {
                if !self.waiting {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => self
                .sleep
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.waiting = true;
        sleep.as_mut().poll(cx)
    }
}
