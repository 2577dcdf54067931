//! Gives every request an id: keeps a well-formed incoming `X-Request-Id` (when trusted) or makes
//! a UUID v4, and continues the W3C trace in `traceparent` (same trace id, a new span id) or
//! starts one. Both go upstream and back to the client; the id is also put in the request
//! context as `request-id` for later plugins.

use wasmgate_plugin_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestId {
    #[serde(default = "x_request_id")]
    header: String,
    /// Keep an id the client (or a proxy in front) sent; off: always make a new one.
    #[serde(default = "yes")]
    trust_incoming: bool,
    /// Continue or start a W3C trace.
    #[serde(default = "yes")]
    traceparent: bool,
    /// Return the id (and traceparent) on the response.
    #[serde(default = "yes")]
    echo: bool,
}

fn x_request_id() -> String {
    "x-request-id".into()
}
fn yes() -> bool {
    true
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // The sandbox's random source (wasi:random) does not fail; zeros would still be an id.
    let _ = getrandom::fill(&mut b);
    b
}

use wasmgate_plugin_sdk::hex::{encode as hex, is_lower_hex};

/// A UUID v4 in its usual text form.
pub fn uuid_v4() -> String {
    uuid_from(random())
}

/// The UUID v4 made of 16 random bytes.
fn uuid_from(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Ids worth keeping: short, and only characters that are safe in logs and headers.
pub fn acceptable_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// The trace id and flags of a valid version-00 `traceparent`.
pub fn parse_traceparent(v: &str) -> Option<(String, String)> {
    let parts: Vec<&str> = v.trim().split('-').collect();
    let [version, trace, parent, flags] = parts[..] else {
        return None;
    };
    let is_hex = is_lower_hex;
    let ok = version == "00"
        && is_hex(trace, 32)
        && trace != "0".repeat(32)
        && is_hex(parent, 16)
        && parent != "0".repeat(16)
        && is_hex(flags, 2);
    ok.then(|| (trace.to_string(), flags.to_string()))
}

#[plugin]
impl Plugin for RequestId {
    type Config = Self;

    fn new(c: Self) -> Result<Self, String> {
        if c.header.is_empty() {
            return Err("`header` must name a header".into());
        }
        Ok(c)
    }

    fn phases(&self, written: Phases) -> Phases {
        if self.echo {
            written
        } else {
            written - Phases::RESPONSE_HEADERS
        }
    }

    fn on_request_headers(&self, req: &Request) -> Action {
        // One draw from the host's random source for the whole request.
        let r: [u8; 40] = random();
        let part = |from: usize| -> [u8; 16] {
            let mut b = [0u8; 16];
            b.copy_from_slice(&r[from..from + 16]);
            b
        };
        let id = req
            .header(&self.header)
            .filter(|id| self.trust_incoming && acceptable_id(id))
            .unwrap_or_else(|| uuid_from(part(0)));
        req.context_set("request-id", &id);
        let mut result = req.set_header(&self.header, &id);
        if self.traceparent {
            let (trace, flags) = req
                .header("traceparent")
                .and_then(|t| parse_traceparent(&t))
                .unwrap_or_else(|| (hex(&part(16)), "01".into()));
            let tp = format!("00-{trace}-{}-{flags}", hex(&r[32..40]));
            req.context_set("traceparent", &tp);
            result = result.and_then(|()| req.set_header("traceparent", &tp));
        }
        result.into()
    }

    fn on_response_headers(&self, req: &Request, resp: &Response) -> Action {
        let mut result = Ok(());
        if let Some(id) = req.context_get("request-id") {
            result = resp.set_header(&self.header, &id);
        }
        if let Some(tp) = req.context_get("traceparent") {
            result = result.and_then(|()| resp.set_header("traceparent", &tp));
        }
        result.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmgate_plugin_sdk::testing::{TestHost, TestRequest, TestResponse};

    #[test]
    fn makes_or_keeps_ids_and_continues_traces() {
        let h = TestHost::<RequestId>::new("{}").unwrap();
        let req = TestRequest::get("/");
        h.request_headers(&req);
        let id = req.view().header("x-request-id").unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4", "UUID v4");
        let tp = req.view().header("traceparent").unwrap();
        assert!(parse_traceparent(&tp).is_some(), "{tp}");
        let resp = TestResponse::new(200);
        h.response_headers(&req, &resp);
        assert_eq!(resp.view().header("x-request-id"), Some(id));

        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let req = TestRequest::get("/")
            .header("x-request-id", "abc-123")
            .header("traceparent", &format!("00-{trace}-00f067aa0ba902b7-01"));
        h.request_headers(&req);
        assert_eq!(
            req.view().header("x-request-id").as_deref(),
            Some("abc-123")
        );
        let tp = req.view().header("traceparent").unwrap();
        assert!(
            tp.starts_with(&format!("00-{trace}-")) && !tp.contains("00f067aa0ba902b7"),
            "{tp}"
        );

        let req = TestRequest::get("/").header("x-request-id", "<script>");
        h.request_headers(&req);
        assert_eq!(
            req.view().header("x-request-id").map(|i| i.len()),
            Some(36),
            "replaced"
        );
    }

    #[test]
    fn validates_traceparent() {
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_none()
        );
    }
}
