//! The client's request body on its way upstream (or into a body plugin): streamed, cut when it
//! passes the route's `max_body` or stalls longer than `body_read_timeout`, and a malformed one
//! (a bad chunk size, a short body) reported as the client's fault. The first piece is read
//! before anything is forwarded, so a body that is malformed from its start never reaches an
//! upstream.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::stall::StallTimer;
use crate::error::ClientBodyError;
use crate::upstream::BoxError;

pub struct ClientBody {
    inner: Incoming,
    /// Bytes still allowed.
    remaining: u64,
    limit: u64,
    stall: StallTimer,
    /// Read ahead by `read_first`, handed out before the rest.
    first: Option<Frame<Bytes>>,
    /// Where the bytes read are told when the body is dropped, for a body of no declared
    /// length (the access log and metrics count what came).
    counted: Option<Arc<AtomicU64>>,
}

impl ClientBody {
    pub fn new(inner: Incoming, limit: u64, stall: StallTimer) -> Self {
        ClientBody {
            inner,
            remaining: limit,
            limit,
            stall,
            first: None,
            counted: None,
        }
    }

    /// Tells `counter` how many bytes were read, once the body is dropped.
    pub fn count_into(&mut self, counter: Arc<AtomicU64>) {
        self.counted = Some(counter);
    }

    /// Reads the body's first piece (if it has a body), so that a body refused from its start
    /// is refused before the request goes anywhere.
    pub async fn read_first(&mut self) -> Result<(), ClientBodyError> {
        if self.inner.is_end_stream() {
            return Ok(());
        }
        let polled = std::future::poll_fn(|cx| Pin::new(&mut *self).poll_frame(cx)).await;
        match polled {
            Some(Ok(frame)) => {
                self.first = Some(frame);
                Ok(())
            }
            Some(Err(e)) => Err(match e.downcast::<ClientBodyError>() {
                Ok(b) => *b,
                Err(other) => ClientBodyError::Malformed(other.to_string()),
            }),
            None => Ok(()),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(frame) = this.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.stall.progress();
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > this.remaining {
                        this.remaining = 0;
                        let e = ClientBodyError::TooLarge { limit: this.limit };
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    this.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e = ClientBodyError::Malformed(e.to_string());
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.stall.poll_stalled(cx) {
                Poll::Ready(()) => {
                    let e = ClientBodyError::TimedOut(this.stall.timeout());
                    Poll::Ready(Some(Err(e.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let Some(data) = self.first.as_ref().and_then(Frame::data_ref) else {
            return inner;
        };
        let n = data.len() as u64;
        // Upper first: `set_lower` insists on lower <= upper.
        let mut hint = SizeHint::new();
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + n);
        }
        hint.set_lower(inner.lower() + n);
        hint
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        if let Some(c) = &self.counted {
            c.store(self.limit - self.remaining, Ordering::Relaxed);
        }
    }
}
