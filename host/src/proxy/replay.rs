//! Keeping a request body to send it again: the body streams upstream as usual while its chunks
//! (reference-counted, not copied) are kept up to a limit. Once it has been read to its end
//! within the limit it can be replayed to another try; a larger body, trailers or a read error
//! make it unreplayable, and the request is not retried.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Full};

use crate::upstream::{Body, BoxError};

/// A request head, copied before the first try takes it, to make another request from.
pub struct Head {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
}

impl Head {
    pub fn of(parts: &http::request::Parts) -> Head {
        Head {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
        }
    }

    pub fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    /// Fresh parts with this head (no extensions: nothing that belongs to one connection).
    pub fn parts(&self) -> http::request::Parts {
        let mut parts = http::Request::new(()).into_parts().0;
        parts.method = self.method.clone();
        parts.uri = self.uri.clone();
        parts.version = self.version;
        parts.headers = self.headers.clone();
        parts
    }
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Reading,
    Whole,
    Lost,
}

#[derive(Debug, Default)]
pub struct Kept {
    chunks: Vec<Bytes>,
    size: usize,
    state: State,
}

/// A handle on the kept body, held by the retry loop.
#[derive(Debug, Clone)]
pub enum Keeper {
    /// The body was empty: nothing to keep, nothing wrapped.
    Empty,
    Kept(Arc<Mutex<Kept>>),
}

impl Keeper {
    /// The whole body again, if it was read to its end within the limit.
    pub fn replay(&self) -> Option<Body> {
        let kept = match self {
            Keeper::Empty => return Some(Body::default()),
            Keeper::Kept(k) => lock(k),
        };
        if !matches!(kept.state, State::Whole) {
            return None;
        }
        let body = match kept.chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => Bytes::from(many.concat()),
        };
        Some(
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
    }
}

fn lock(k: &Mutex<Kept>) -> std::sync::MutexGuard<'_, Kept> {
    k.lock().unwrap_or_else(|p| p.into_inner())
}

/// Wraps `body`, keeping up to `limit` bytes of it. An empty body (most GETs) is left as it is.
pub fn keep(body: Body, limit: usize) -> (Body, Keeper) {
    if body.is_end_stream() {
        return (body, Keeper::Empty);
    }
    let kept = Arc::new(Mutex::new(Kept::default()));
    let recording = Recording {
        inner: body,
        kept: kept.clone(),
        limit,
    };
    (recording.boxed_unsync(), Keeper::Kept(kept))
}

struct Recording {
    inner: Body,
    kept: Arc<Mutex<Kept>>,
    limit: usize,
}

impl http_body::Body for Recording {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let end = self.inner.is_end_stream();
        let mut kept = lock(&self.kept);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (State::Reading, Some(data)) = (&kept.state, frame.data_ref()) {
                    if kept.size + data.len() > self.limit {
                        kept.state = State::Lost;
                        kept.chunks = Vec::new();
                    } else {
                        kept.size += data.len();
                        kept.chunks.push(data.clone());
                    }
                } else if frame.is_trailers() {
                    kept.state = State::Lost;
                }
                if end && matches!(kept.state, State::Reading) {
                    kept.state = State::Whole;
                }
            }
            Poll::Ready(Some(Err(_))) => kept.state = State::Lost,
            Poll::Ready(None) => {
                if matches!(kept.state, State::Reading) {
                    kept.state = State::Whole;
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn stream(chunks: &[&'static str]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_body_read_to_its_end_is_replayed_whole() {
        run(async {
            let (body, keeper) = keep(stream(&["ab", "cd"]), 16);
            assert!(keeper.replay().is_none(), "not read yet");
            let sent = body.collect().await.expect("body").to_bytes();
            assert_eq!(&sent[..], b"abcd");
            let again = keeper.replay().expect("replay");
            assert_eq!(
                &again.collect().await.expect("again").to_bytes()[..],
                b"abcd"
            );
        });
    }

    #[test]
    fn a_body_over_the_limit_is_not_kept() {
        run(async {
            let (body, keeper) = keep(stream(&["abc", "def"]), 4);
            body.collect().await.expect("body");
            assert!(keeper.replay().is_none());
        });
    }

    #[test]
    fn an_empty_body_replays_at_once() {
        let (_body, keeper) = keep(Body::default(), 4);
        assert!(keeper.replay().is_some());
    }
}
