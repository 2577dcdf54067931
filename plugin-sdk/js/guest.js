// The component's export: the gateway calls `guest`; it hands each call to the class given to
// plugin(). The build tool makes the component's entry module export this.

import { log } from "wasmgate:plugin/log@0.2.0";
import { Answer } from "./answer.js";
import { ConfigError } from "./config.js";
import { Request, Response, registeredPlugin } from "./plugin.js";

const text = (args) => args.map((a) => (typeof a === "string" ? a : JSON.stringify(a) ?? String(a))).join(" ");

/** console.* goes to the gateway's log, tagged with the plugin's name. */
function wireConsole() {
  console.log = (...a) => log("info", text(a));
  console.info = (...a) => log("info", text(a));
  console.debug = (...a) => log("debug", text(a));
  console.warn = (...a) => log("warn", text(a));
  console.error = (...a) => log("error", text(a));
}

const describe = (e) => (e instanceof Error ? `${e.name}: ${e.message}${e.stack ? `\n${e.stack}` : ""}` : String(e));

/** The exception and its stack to the gateway's log; the caller rethrows, which traps the call:
 * the gateway answers per the plugin's fail mode and drops this instance. */
function failed(where, e) {
  log("error", `exception in ${where}: ${describe(e).trimEnd()}`);
}

function action(result, phase) {
  if (result === undefined || result === null) return { tag: "continue" };
  if (result instanceof Answer) {
    return { tag: "respond", val: { status: result.status, headers: result.headers, body: result.body } };
  }
  throw new TypeError(`${phase} returned ${typeof result}: return nothing or an Answer`);
}

const FLAGS = {
  onRequestHeaders: "requestHeaders",
  onRequestBody: "requestBody",
  onResponseHeaders: "responseHeaders",
  onResponseBody: "responseBody",
  onLog: "log",
};

let instance = null;

function phase(name, call) {
  try {
    return action(call(), name);
  } catch (e) {
    failed(name, e);
    throw e;
  }
}

export const guest = {
  init(config) {
    wireConsole();
    let cls;
    // A refusal, not a crash: the gateway keeps its last good config and says why.
    try {
      cls = registeredPlugin();
      instance = new cls(JSON.parse(config));
    } catch (e) {
      if (e instanceof ConfigError) throw e.message;
      // Not a refusal the plugin meant: where it came from matters.
      failed("the constructor", e);
      throw e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    }
    const phases = {};
    for (const p of cls.implemented()) phases[FLAGS[p]] = true;
    if (cls.rawBody) phases.rawBody = true;
    return phases;
  },
  onRequestHeaders: (req) => phase("onRequestHeaders", () => instance.onRequestHeaders(new Request(req))),
  onRequestBody: (req) => phase("onRequestBody", () => instance.onRequestBody(new Request(req))),
  onResponseHeaders: (req, resp) =>
    phase("onResponseHeaders", () => instance.onResponseHeaders(new Request(req), new Response(resp))),
  onResponseBody: (req, resp) =>
    phase("onResponseBody", () => instance.onResponseBody(new Request(req), new Response(resp))),
  onLog(entry) {
    try {
      instance.onLog(entry);
    } catch (e) {
      failed("onLog", e);
      throw e;
    }
  },
};
