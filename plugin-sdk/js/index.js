// Write wasmgate policy plugins in JavaScript.
//
// A plugin is a class with the phase methods it needs; the SDK reports those (and only those)
// to the gateway at load, turns exceptions into a refused config (in the constructor) or the
// plugin's fail mode (in a phase) with the stack in the gateway's log, and sends console.* to
// the gateway's log:
//
//   import { Plugin, Answer, plugin, config } from "wasmgate-plugin";
//
//   class Deny extends Plugin {
//     constructor(c) { super(c); this.header = config(c, { header: "x-deny" }).header; }
//     onRequestHeaders(req) {
//       if (req.header(this.header) !== undefined) return Answer.problem(403, "denied");
//     }
//   }
//   plugin(Deny);
//
// A phase returns nothing to go on, or an Answer. Build with `wasmgate-plugin-build`.

export { Answer } from "./answer.js";
export { ConfigError, config } from "./config.js";
export { Plugin, plugin } from "./plugin.js";
export { clock, http, kv, metrics } from "./caps.js";
