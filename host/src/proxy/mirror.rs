//! Mirroring: a copy of a share of a route's requests goes to a shadow upstream (a new version
//! tried on real traffic). The copy leaves once the real request has its answer, on its own
//! task: the shadow's answer is read and thrown away, and however slow or broken the shadow
//! is, the client never waits for it.

use std::net::IpAddr;

use http::{HeaderValue, Request};
use http_body_util::BodyExt;

use super::{RequestKeys, address, replay, retry::path_of};
use crate::upstream::{Body, Mirror};

/// A request being copied: its head now, its body once the real request has read it.
pub(super) struct Copy<'a> {
    mirror: &'a Mirror,
    head: replay::Head,
    body: replay::Keeper,
}

/// Starts copying `parts`' request when the mirror samples it; the body given back keeps what
/// the copy needs as the real request streams it.
pub(super) fn begin<'a>(
    mirror: Option<&'a Mirror>,
    parts: &http::request::Parts,
    body: Body,
) -> (Body, Option<Copy<'a>>) {
    match mirror.filter(|m| m.sample()) {
        Some(mirror) => {
            let (body, keeper) = replay::keep(body, mirror.max_body);
            let copy = Copy {
                mirror,
                head: replay::Head::of(parts),
                body: keeper,
            };
            (body, Some(copy))
        }
        None => (body, None),
    }
}

impl Copy<'_> {
    /// Sends the copy off. Skipped (and counted) when the body was not read whole within
    /// `max_body` or the shadow has no target in rotation.
    pub(super) fn send(self, client: IpAddr, host: &HeaderValue) {
        let up = self.mirror.upstream.clone();
        let name = up.name.to_string();
        let count = move |result: &'static str| {
            metrics::counter!("wasmgate_mirror_requests_total", "upstream" => name.clone(), "result" => result)
                .increment(1);
        };
        let Some(body) = self.body.replay() else {
            count("skipped");
            return;
        };
        let keys = RequestKeys {
            headers: self.head.headers(),
            client,
        };
        let Some(target) = up.admit(&keys) else {
            count("skipped");
            return;
        };
        let mut parts = self.head.parts();
        let pq = path_of(&parts.uri);
        if address(&mut parts, &up, &target, pq, host).is_err() {
            count("skipped");
            return;
        }
        tokio::spawn(async move {
            match up.send(&target, Request::from_parts(parts, body)).await {
                Ok((resp, mut lease)) => {
                    let mut body = resp.into_body();
                    while let Some(frame) = body.frame().await {
                        if frame.is_err() {
                            count("failed");
                            return;
                        }
                    }
                    lease.complete();
                    count("ok");
                }
                Err(e) => {
                    tracing::debug!(error = %e, upstream = %up.name, "mirrored request failed");
                    count("failed");
                }
            }
        });
    }
}
