//! The PROXY protocol (v1 text, v2 binary) on a listener behind a TCP load balancer: the header
//! the balancer writes before the client's bytes says who the client is. Only the header is
//! consumed (peeked first, then read to its exact length): what follows goes to HTTP untouched.

use std::net::SocketAddr;

use ppp::{HeaderResult, PartialResult, v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest header accepted (v2 with TLVs from cloud balancers stays far below).
const MAX_HEADER: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header within the header deadline")]
    TimedOut,
    #[error("the connection closed before its PROXY protocol header was complete")]
    Closed,
    #[error("invalid PROXY protocol header: {0}")]
    Invalid(String),
    #[error("reading the PROXY protocol header: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads the header; the client's address when it carries one (`None` for `LOCAL`/`UNKNOWN`:
/// the balancer's own health checks, which keep the peer address).
pub async fn read(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut got: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 1024];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .map_err(|_| ProxyHeaderError::TimedOut)??;
        if n == 0 {
            return Err(ProxyHeaderError::Closed);
        }
        let mut candidate = got.clone();
        candidate.extend_from_slice(&buf[..n]);
        if !starts_like_a_header(&candidate) {
            return Err(ProxyHeaderError::Invalid(
                "the connection does not start with one".into(),
            ));
        }
        let parsed = HeaderResult::parse(&candidate);
        // A v1 header ends at its first CRLF: "missing a field" past it is malformed, not short.
        let v1_ended =
            candidate.starts_with(b"PROXY ") && candidate.windows(2).any(|w| w == b"\r\n");
        if parsed.is_incomplete() && v1_ended {
            return Err(ProxyHeaderError::Invalid(
                "a v1 header with missing fields".into(),
            ));
        }
        if parsed.is_incomplete() {
            if candidate.len() >= MAX_HEADER {
                return Err(ProxyHeaderError::Invalid(format!(
                    "longer than {MAX_HEADER} bytes"
                )));
            }
            // All of it is header: take it off the socket and wait for more.
            stream.read_exact(&mut buf[..n]).await?;
            got.extend_from_slice(&buf[..n]);
            continue;
        }
        let (len, addr) = match parsed {
            HeaderResult::V1(Ok(h)) => (h.header.len(), v1_source(&h.addresses)),
            HeaderResult::V2(Ok(h)) => (h.len(), v2_source(&h)),
            HeaderResult::V1(Err(e)) => return Err(ProxyHeaderError::Invalid(e.to_string())),
            HeaderResult::V2(Err(e)) => return Err(ProxyHeaderError::Invalid(e.to_string())),
        };
        let rest = len.saturating_sub(got.len());
        let mut tail = vec![0u8; rest];
        stream.read_exact(&mut tail).await?;
        return Ok(addr);
    }
}

/// Whether the bytes so far could begin a v1 or v2 header (the parser calls plain HTTP
/// "incomplete", which would wait for the deadline).
fn starts_like_a_header(b: &[u8]) -> bool {
    const V1: &[u8] = b"PROXY ";
    const V2: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    [V1, V2].iter().any(|sig| {
        let n = sig.len().min(b.len());
        b[..n] == sig[..n]
    })
}

fn v1_source(a: &v1::Addresses) -> Option<SocketAddr> {
    match a {
        v1::Addresses::Tcp4(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
        v1::Addresses::Tcp6(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
        v1::Addresses::Unknown => None,
    }
}

fn v2_source(h: &v2::Header<'_>) -> Option<SocketAddr> {
    if h.command != v2::Command::Proxy {
        return None;
    }
    match h.addresses {
        v2::Addresses::IPv4(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
        v2::Addresses::IPv6(ip) => Some(SocketAddr::from((ip.source_address, ip.source_port))),
        _ => None,
    }
}
