//! A route handler: a standard `wasi:http/incoming-handler` component that answers requests
//! itself, named by a route's `handler` instead of an upstream. It answers with JSON saying
//! what it was asked (method, path, host, how many body bytes); `/spin` loops forever, to show
//! the CPU deadline cutting a handler off.

use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Hello;

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        if path.ends_with("/spin") {
            spin();
        }
        let host = request.authority().unwrap_or_default();
        let method = method_name(&request.method());
        let body_bytes = request.consume().map_or(0, |b| count(&b));
        let reply = serde_json::json!({
            "handler": "rust",
            "method": method,
            "path": path,
            "host": host,
            "body_bytes": body_bytes,
        })
        .to_string();
        respond(out, 200, reply.as_bytes());
    }
}

/// Reads the request body to its end, counting bytes.
fn count(body: &IncomingBody) -> u64 {
    let Ok(stream) = body.stream() else { return 0 };
    let mut n = 0;
    while let Ok(chunk) = stream.blocking_read(64 << 10) {
        n += chunk.len() as u64;
    }
    n
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::from_list(&[
        ("content-type".into(), b"application/json".to_vec()),
        ("x-handler".into(), b"rust".to_vec()),
    ]);
    let Ok(headers) = headers else { return };
    let resp = OutgoingResponse::new(headers);
    let _ = resp.set_status_code(status);
    let Ok(outgoing) = resp.body() else { return };
    ResponseOutparam::set(out, Ok(resp));
    if let Ok(stream) = outgoing.write() {
        // One call writes at most 4096 bytes.
        for chunk in body.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                return;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.clone(),
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

wasip2::http::proxy::export!(Hello);
