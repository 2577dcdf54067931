//! Deadlines for one client connection, kept at the socket so they hold whatever the client
//! sends or withholds: a request head must be complete within `header_read_timeout` of accept (or
//! of its first byte on a kept-alive connection), else 408 and close; a connection with no
//! request in flight closes after `idle_timeout` (HTTP/1.1 keep-alive and HTTP/2 alike).
//! While a request is in flight the body timers take over (`proxy::stall`).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::telemetry::connections::OpenConnection;

/// Requests in flight on one connection, shared by its socket guard and its service.
#[derive(Default)]
pub struct Activity {
    active: AtomicUsize,
    /// Bumped whenever a request starts or ends, so the guard knows to re-arm.
    changes: AtomicUsize,
    /// After a protocol switch (WebSocket) the connection is a tunnel: no HTTP deadlines.
    upgraded: AtomicBool,
    /// The socket's reader, woken when the last request ends so that it arms the idle deadline
    /// even if the client sends nothing more.
    reader: AtomicWaker,
}

impl Activity {
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(1, Ordering::Release);
        InFlight(self.clone())
    }
}

/// One request in flight; it ends when the response body is done or dropped.
pub struct InFlight(Arc<Activity>);

impl InFlight {
    pub fn upgraded(&self) {
        self.0.upgraded.store(true, Ordering::Relaxed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let last = self.0.active.fetch_sub(1, Ordering::Relaxed) == 1;
        self.0.changes.fetch_add(1, Ordering::Release);
        if last {
            self.0.reader.wake();
        }
    }
}

pin_project! {
    /// A response body that keeps its request counted as in flight until it is sent.
    pub struct Tracked<B> {
        #[pin]
        body: B,
        in_flight: InFlight,
    }
}

impl<B> Tracked<B> {
    pub fn new(body: B, in_flight: InFlight) -> Self {
        Tracked { body, in_flight }
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    pub header: Duration,
    pub idle: Duration,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Unknown,
    Http1,
    Http2,
}

/// What a client whose request head timed out is told before the connection closes.
const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\ncontent-length: 112\r\nconnection: close\r\n\r\n{\"type\":\"about:blank\",\"title\":\"Request Timeout\",\"status\":408,\"detail\":\"the request head did not arrive in time\"}";

pin_project! {
    /// The connection's socket (or TLS stream) with the head and idle deadlines applied.
    pub struct Guarded<S> {
        #[pin]
        io: S,
        activity: Arc<Activity>,
        limits: Deadlines,
        // The first head's deadline, counted from accept.
        first: Instant,
        seen: usize,
        served: bool,
        // Bytes of a head arrived while no request was in flight.
        partial: bool,
        proto: Proto,
        open: OpenConnection,
        deadline: Option<Instant>,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<S> Guarded<S> {
    pub fn new(
        io: S,
        activity: Arc<Activity>,
        limits: Deadlines,
        accepted: Instant,
        open: OpenConnection,
    ) -> Self {
        Guarded {
            io,
            activity,
            limits,
            first: accepted + limits.header,
            seen: 0,
            served: false,
            partial: false,
            proto: Proto::Unknown,
            open,
            deadline: None,
            sleep: None,
        }
    }
}

impl<S: AsyncRead + AsyncWrite> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        let activity = &**this.activity;
        if activity.upgraded.load(Ordering::Relaxed) {
            return this.io.poll_read(cx, buf);
        }
        let changes = activity.changes.load(Ordering::Acquire);
        if changes != *this.seen {
            *this.seen = changes;
            *this.served = true;
            *this.partial = false;
            *this.deadline = None;
        }
        let idle = activity.active.load(Ordering::Relaxed) == 0;
        let before = buf.filled().len();
        match this.io.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let got = &buf.filled()[before..];
                if *this.proto == Proto::Unknown && !got.is_empty() {
                    let http2 = got.starts_with(b"PRI ");
                    *this.proto = if http2 { Proto::Http2 } else { Proto::Http1 };
                    this.open.speaks(http2);
                }
                if idle && !got.is_empty() && *this.proto == Proto::Http1 && !*this.partial {
                    *this.partial = true;
                    // A kept-alive connection's next head gets the head timeout from its first
                    // byte; the first head keeps the one counted from accept.
                    if *this.served {
                        *this.deadline = None;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if !idle => {
                activity.reader.register(cx.waker());
                // The request may have ended between the check and the registration.
                if activity.active.load(Ordering::Relaxed) == 0 {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            Poll::Pending => {
                if this.deadline.is_none() {
                    let d = if !*this.served {
                        *this.first
                    } else if *this.partial {
                        Instant::now() + this.limits.header
                    } else {
                        Instant::now() + this.limits.idle
                    };
                    *this.deadline = Some(d);
                    match this.sleep {
                        Some(s) => s.as_mut().reset(d),
                        None => *this.sleep = Some(Box::pin(tokio::time::sleep_until(d))),
                    }
                }
                let fired = this
                    .sleep
                    .as_mut()
                    .is_some_and(|s| s.as_mut().poll(cx).is_ready());
                if !fired {
                    return Poll::Pending;
                }
                if *this.partial {
                    // Best effort: the client gets a reason if its socket takes it now.
                    let _ = this.io.as_mut().poll_write(cx, TIMED_OUT);
                    let _ = this.io.as_mut().poll_flush(cx);
                    tracing::debug!("request head timed out: 408");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request head timed out",
                    )));
                }
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "idle connection closed",
                )))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<S: AsyncWrite> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
