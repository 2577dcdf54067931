"""{name}: answers 403 when `deny_header` is present; otherwise marks the request and the
response with `x-{name}`."""

import wasmgate_plugin as wg


@wg.plugin
class {type}(wg.Plugin):
    def __init__(self, config):
        self.deny_header = wg.config(config, {"deny_header": "x-deny"})["deny_header"]

    def on_request_headers(self, req):
        if req.header(self.deny_header) is not None:
            return wg.Answer.problem(403, "denied")
        req.set_header("x-{name}", "seen")

    def on_response_headers(self, req, resp):
        resp.set_header("x-{name}", "seen")
