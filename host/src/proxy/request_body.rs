//! The client's request body on its way upstream (or into a body plugin): streamed, cut when it
//! passes the route's `max_body` or stalls longer than `body_read_timeout`, and a malformed one
//! (a bad chunk size, a short body) reported as the client's fault.

use std::pin::Pin;
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
}

impl ClientBody {
    pub fn new(inner: Incoming, limit: u64, stall: StallTimer) -> Self {
        ClientBody {
            inner,
            remaining: limit,
            limit,
            stall,
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
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
