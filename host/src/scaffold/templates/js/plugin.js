// {name}: answers 403 when `deny_header` is present; otherwise marks the request and the
// response with `x-{name}`.
import { Answer, Plugin, config, plugin } from "wasmgate-plugin";

class {type} extends Plugin {
  constructor(given) {
    super(given);
    this.denyHeader = config(given, { deny_header: "x-deny" }).deny_header;
  }

  onRequestHeaders(req) {
    if (req.header(this.denyHeader) !== undefined) return Answer.problem(403, "denied");
    req.setHeader("x-{name}", "seen");
  }

  onResponseHeaders(req, resp) {
    resp.setHeader("x-{name}", "seen");
  }
}

plugin({type});
