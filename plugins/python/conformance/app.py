"""The conformance plugin, in Python: the same behaviours as plugins/conformance (Rust) and
plugins/js/conformance, run by one end-to-end suite for every language.

- `deny_header` present: 403 problem+json.
- `request_headers` / `response_headers`: set on the way in / out.
- `counter` (a kv key): counted per request, the count in `x-count`, a metric and a log line.
- `x-raise: TEXT` raises an exception; `x-allocate-mb: N` keeps N MiB (the memory cap test).
- The response body's size in `x-body-bytes`, unless the request has `x-skip-body` (then the
  plugin says skip_body and its body phase is not called).
"""

import logging

import wasmgate_plugin as wg

LANGUAGE = "python"
kept = []


@wg.plugin
class Conformance(wg.Plugin):
    def __init__(self, config):
        c = wg.config(
            config,
            {"deny_header": "x-deny", "request_headers": {}, "response_headers": {}, "counter": ""},
        )
        self.deny_header = c["deny_header"]
        self.request_headers = c["request_headers"]
        self.response_headers = c["response_headers"]
        self.counter = c["counter"]

    def on_request_headers(self, req):
        raised = req.header("x-raise")
        if raised is not None:
            raise RuntimeError(f"asked to raise: {raised}")
        mb = req.header("x-allocate-mb")
        if mb is not None:
            kept.append(bytearray(int(mb) << 20))
        if req.header(self.deny_header) is not None:
            return wg.Answer.problem(403, f"denied by the {LANGUAGE} plugin")
        for name, value in self.request_headers.items():
            req.set_header(name, value)
        # The first value claimed under `claim` wins: kv.compare_and_swap from a missing key.
        claim = req.header("x-claim")
        if claim is not None:
            won = wg.kv.compare_and_swap("claim", None, claim)
            req.context_set("claimed", "yes" if won else "no")
        if self.counter:
            n = wg.kv.incr(self.counter)
            req.context_set("count", n)
            wg.metrics.counter_add("requests")
            logging.info("request %d", n)

    def on_response_headers(self, req, resp):
        for name, value in self.response_headers.items():
            resp.set_header(name, value)
        claimed = req.context_get("claimed")
        if claimed is not None:
            resp.set_header("x-claimed", claimed)
        count = req.context_get("count")
        if count is not None:
            resp.set_header("x-count", count)
        resp.set_header("x-plugin-language", LANGUAGE)
        if req.header("x-skip-body") is not None:
            resp.skip_body()

    def on_response_body(self, req, resp):
        body = resp.body()
        resp.set_header("x-body-bytes", str(len(body) if body is not None else 0))
