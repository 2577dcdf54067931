// The conformance plugin, in JavaScript: the same behaviours as plugins/conformance (Rust) and
// plugins/python/conformance, run by one end-to-end suite for every language.
//
// - `deny_header` present: 403 problem+json.
// - `request_headers` / `response_headers`: set on the way in / out.
// - `counter` (a kv key): counted per request, the count in `x-count`, a metric and a log line.
// - `x-raise: TEXT` throws; `x-allocate-mb: N` keeps N MiB (the memory cap test).
// - The response body's size in `x-body-bytes`, unless the request has `x-skip-body` (then the
//   plugin says skipBody and its body phase is not called).

import { Answer, Plugin, config, kv, metrics, plugin } from "wasmgate-plugin";

const LANGUAGE = "js";
const kept = [];

class Conformance extends Plugin {
  constructor(given) {
    super(given);
    const c = config(given, { deny_header: "x-deny", request_headers: {}, response_headers: {}, counter: "" });
    Object.assign(this, c);
  }

  onRequestHeaders(req) {
    const raised = req.header("x-raise");
    if (raised !== undefined) throw new Error(`asked to raise: ${raised}`);
    const mb = req.header("x-allocate-mb");
    if (mb !== undefined) kept.push(new Uint8Array(Number(mb) << 20).fill(1));
    if (req.header(this.deny_header) !== undefined) {
      return Answer.problem(403, `denied by the ${LANGUAGE} plugin`);
    }
    for (const [name, value] of Object.entries(this.request_headers)) req.setHeader(name, value);
    // The first value claimed under `claim` wins: kv.compareAndSwap from a missing key.
    const claim = req.header("x-claim");
    if (claim !== undefined) req.contextSet("claimed", kv.compareAndSwap("claim", null, claim) ? "yes" : "no");
    if (this.counter) {
      const n = kv.incr(this.counter);
      req.contextSet("count", n);
      metrics.counterAdd("requests");
      console.log(`request ${n}`);
    }
  }

  onResponseHeaders(req, resp) {
    for (const [name, value] of Object.entries(this.response_headers)) resp.setHeader(name, value);
    const claimed = req.contextGet("claimed");
    if (claimed !== undefined) resp.setHeader("x-claimed", claimed);
    const count = req.contextGet("count");
    if (count !== undefined) resp.setHeader("x-count", count);
    resp.setHeader("x-plugin-language", LANGUAGE);
    if (req.header("x-skip-body") !== undefined) resp.skipBody();
  }

  onResponseBody(req, resp) {
    resp.setHeader("x-body-bytes", String(resp.body()?.length ?? 0));
  }
}

plugin(Conformance);
