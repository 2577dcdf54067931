//! Response compression, transport work as in Envoy and nginx: gzip, br or zstd as the client's
//! `Accept-Encoding` prefers (q-values, then the route's order), for the route's media types
//! above its minimum size, never over another encoding, a range, or `no-transform`. The body
//! streams through the encoder as it arrives: nothing is buffered whole.

use async_compression::Level;
use async_compression::tokio::bufread::{BrotliEncoder, GzipEncoder, ZstdEncoder};
use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio_util::io::{ReaderStream, StreamReader};

use super::ResponseBody;
use crate::config::{Compress, Encoding};
use crate::upstream::BoxError;

/// Output chunks: large enough to fill a TLS record or an HTTP/2 frame a few times over.
const CHUNK: usize = 16 * 1024;

/// `resp` compressed for a client that sent `accept`, when `cfg` and the response allow it
/// (the caller leaves out HEAD requests: no body). A response of a compressible kind gets
/// `Vary: Accept-Encoding` either way.
pub fn apply(
    cfg: &Compress,
    accept: Option<&HeaderValue>,
    resp: Response<ResponseBody>,
) -> Response<ResponseBody> {
    if !eligible(cfg, resp.status(), resp.headers()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    add_vary(&mut parts.headers);
    let Some(encoding) = negotiate(&cfg.encodings, accept) else {
        return Response::from_parts(parts, body);
    };
    let h = &mut parts.headers;
    h.remove(header::CONTENT_LENGTH);
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.token()),
    );
    weaken_etag(h);
    let reader = StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let out = match encoding {
        Encoding::Gzip => frames(GzipEncoder::with_quality(reader, level(cfg.gzip_level))),
        Encoding::Br => frames(BrotliEncoder::with_quality(reader, level(cfg.brotli_level))),
        Encoding::Zstd => frames(ZstdEncoder::with_quality(reader, level(cfg.zstd_level))),
    };
    Response::from_parts(parts, ResponseBody::boxed(out))
}

fn level(n: u32) -> Level {
    Level::Precise(i32::try_from(n).unwrap_or(i32::MAX))
}

fn frames<R>(encoder: R) -> http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>
where
    R: tokio::io::AsyncRead + Send + 'static,
{
    let chunks: std::pin::Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>> =
        Box::pin(ReaderStream::with_capacity(encoder, CHUNK));
    StreamBody::new(chunks.map(|c| c.map(Frame::data).map_err(BoxError::from))).boxed_unsync()
}

/// Whether the response is one to compress: a body of a listed type, not encoded already.
fn eligible(cfg: &Compress, status: StatusCode, h: &HeaderMap) -> bool {
    let no_body = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    if no_body || h.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    let encoded = h
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    let no_transform = h
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"));
    let small = h
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n < cfg.min_size.bytes());
    let listed = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|essence| cfg.types.iter().any(|t| type_matches(t, &essence)));
    listed && !encoded && !no_transform && !small
}

/// `pattern` is a media type, exact or with one `*` (`text/*`, `application/*+json`).
fn type_matches(pattern: &str, essence: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern.eq_ignore_ascii_case(essence),
        Some((prefix, suffix)) => {
            essence.len() >= prefix.len() + suffix.len()
                && essence.starts_with(&prefix.to_ascii_lowercase())
                && essence.ends_with(&suffix.to_ascii_lowercase())
        }
    }
}

/// The encoding the client prefers among `offered` (RFC 9110 §12.5.3): the highest q-value,
/// ties going to the earlier in `offered`; `None` without an `Accept-Encoding` or when it
/// accepts none of them.
pub fn negotiate(offered: &[Encoding], accept: Option<&HeaderValue>) -> Option<Encoding> {
    let accept = accept?.to_str().ok()?;
    // (token, q) of each item, read in place: this runs on every request of the route.
    let items = || {
        accept.split(',').filter_map(|item| {
            let mut params = item.split(';');
            let token = params.next().unwrap_or("").trim();
            let q = params
                .filter_map(|p| p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!token.is_empty()).then_some((token, q.clamp(0.0, 1.0)))
        })
    };
    let names = |token: &str, t: &str| {
        t.eq_ignore_ascii_case(token) || (token == "gzip" && t.eq_ignore_ascii_case("x-gzip"))
    };
    let q_of = |token: &str| {
        items()
            .find(|(t, _)| names(token, t))
            .or_else(|| items().find(|(t, _)| *t == "*"))
            .map_or(0.0, |(_, q)| q)
    };
    let mut best: Option<(Encoding, f32)> = None;
    for e in offered {
        let q = q_of(e.token());
        if q > 0.0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*e, q));
        }
    }
    best.map(|(e, _)| e)
}

fn add_vary(h: &mut HeaderMap) {
    let covered = h
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|n| n.trim() == "*" || n.trim().eq_ignore_ascii_case("accept-encoding"));
    if !covered {
        h.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// A strong validator no longer describes the bytes sent (RFC 9110 §8.8.1): made weak, as
/// nginx does.
fn weaken_etag(h: &mut HeaderMap) {
    if let Some(v) = h.get(header::ETAG)
        && v.as_bytes().starts_with(b"\"")
    {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(v.as_bytes());
        if let Ok(w) = HeaderValue::from_bytes(&weak) {
            h.insert(header::ETAG, w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Encoding; 3] = [Encoding::Zstd, Encoding::Br, Encoding::Gzip];

    fn pick(accept: &str) -> Option<Encoding> {
        negotiate(&ALL, Some(&HeaderValue::from_str(accept).expect("valid")))
    }

    #[test]
    fn the_highest_q_wins_then_the_routes_order() {
        assert_eq!(pick("gzip, br, zstd"), Some(Encoding::Zstd));
        assert_eq!(pick("gzip;q=0.8, br;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(pick("br;q=0.9, gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("x-gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("*;q=0.5, zstd;q=0"), Some(Encoding::Br));
        assert_eq!(pick("gzip;q=0, identity"), None);
        assert_eq!(pick("deflate"), None);
        assert_eq!(negotiate(&ALL, None), None);
        assert_eq!(
            negotiate(
                &[Encoding::Gzip],
                Some(&HeaderValue::from_static("br, gzip"))
            ),
            Some(Encoding::Gzip)
        );
    }

    #[test]
    fn media_types_match_exactly_or_around_one_star() {
        assert!(type_matches("text/*", "text/html"));
        assert!(type_matches(
            "application/*+json",
            "application/problem+json"
        ));
        assert!(!type_matches("application/*+json", "application/json"));
        assert!(type_matches("application/json", "application/json"));
        assert!(!type_matches("text/*", "image/png"));
    }

    #[test]
    fn strong_etags_become_weak() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, HeaderValue::from_static("\"abc\""));
        weaken_etag(&mut h);
        assert_eq!(
            h.get(header::ETAG).map(HeaderValue::as_bytes),
            Some(&b"W/\"abc\""[..])
        );
        h.insert(header::ETAG, HeaderValue::from_static("W/\"x\""));
        weaken_etag(&mut h);
        assert_eq!(
            h.get(header::ETAG).map(HeaderValue::as_bytes),
            Some(&b"W/\"x\""[..])
        );
    }
}
