//! Bodies handed to body plugins decoded: `Content-Encoding: gzip`, `br` or `zstd` is undone
//! before the call (bounded by the chain's body limit, so a small bomb cannot grow past it, and
//! zstd's window capped, so a frame cannot ask for a huge buffer), and a body a plugin replaced
//! goes out unencoded.

use std::io::Read;

use bytes::Bytes;
use http::{HeaderMap, header};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the decoded body is over {0} bytes, the limit of this route's body plugins")]
    TooLarge(usize),
    #[error("the body is not valid {encoding}: {source}")]
    Corrupt {
        encoding: &'static str,
        source: std::io::Error,
    },
}

/// The encodings the host undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
    Zstd,
}

/// The largest zstd window a body may use: 2^23 = 8 MiB (the format's default maximum for
/// decoders that do not say is 128 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// The body's single content coding, if it is one the host can undo.
pub fn coding(headers: &HeaderMap) -> Option<Coding> {
    let mut values = headers.get_all(header::CONTENT_ENCODING).iter();
    let v = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let v = v.to_str().ok()?.trim();
    if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
        Some(Coding::Gzip)
    } else if v.eq_ignore_ascii_case("br") {
        Some(Coding::Brotli)
    } else if v.eq_ignore_ascii_case("zstd") {
        Some(Coding::Zstd)
    } else {
        None
    }
}

/// Decodes `body`; at most `limit` bytes come out.
pub fn decode(coding: Coding, body: &[u8], limit: usize) -> Result<Bytes, DecodeError> {
    let corrupt = |encoding, source| DecodeError::Corrupt { encoding, source };
    let (reader, encoding): (Box<dyn Read + '_>, &'static str) = match coding {
        Coding::Gzip => (Box::new(flate2::read::MultiGzDecoder::new(body)), "gzip"),
        Coding::Brotli => (
            Box::new(brotli_decompressor::Decompressor::new(body, 8192)),
            "br",
        ),
        Coding::Zstd => {
            let mut d =
                zstd::stream::read::Decoder::with_buffer(body).map_err(|e| corrupt("zstd", e))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| corrupt("zstd", e))?;
            (Box::new(d), "zstd")
        }
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    // One byte over the limit tells "too large" from "exactly the limit".
    let read = reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|source| corrupt(encoding, source))?;
    if read > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(Bytes::from(out))
}

/// A buffered body goes out with a known length and no transfer coding; one a plugin rewrote
/// after decoding goes out unencoded.
pub fn fix_framing(h: &mut HeaderMap, len: usize, decoded: bool) {
    h.remove(header::TRANSFER_ENCODING);
    if decoded {
        h.remove(header::CONTENT_ENCODING);
    }
    h.insert(header::CONTENT_LENGTH, http::HeaderValue::from(len));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("in-memory write");
        e.finish().expect("in-memory write")
    }

    #[test]
    fn gzip_round_trips_and_is_bounded() {
        let data = vec![b'a'; 10_000];
        let z = gzip(&data);
        assert_eq!(decode(Coding::Gzip, &z, 10_000).expect("fits"), data);
        assert!(matches!(
            decode(Coding::Gzip, &z, 9_999),
            Err(DecodeError::TooLarge(9_999))
        ));
        assert!(matches!(
            decode(Coding::Gzip, b"not gzip", 100),
            Err(DecodeError::Corrupt { .. })
        ));
    }

    #[test]
    fn zstd_round_trips_and_is_bounded() {
        let data = vec![b'z'; 10_000];
        let z = zstd::stream::encode_all(&data[..], 3).expect("in-memory");
        assert_eq!(decode(Coding::Zstd, &z, 10_000).expect("fits"), data);
        assert!(matches!(
            decode(Coding::Zstd, &z, 9_999),
            Err(DecodeError::TooLarge(9_999))
        ));
        assert!(matches!(
            decode(Coding::Zstd, b"not zstd", 100),
            Err(DecodeError::Corrupt { .. })
        ));
    }

    #[test]
    fn only_a_single_known_coding_is_undone() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "GZIP".parse().expect("valid"));
        assert_eq!(coding(&h), Some(Coding::Gzip));
        h.append(header::CONTENT_ENCODING, "br".parse().expect("valid"));
        assert_eq!(coding(&h), None);
        h.insert(header::CONTENT_ENCODING, "deflate".parse().expect("valid"));
        assert_eq!(coding(&h), None);
        h.insert(header::CONTENT_ENCODING, "zstd".parse().expect("valid"));
        assert_eq!(coding(&h), Some(Coding::Zstd));
    }
}
