// Unit-test a plugin natively, without a gateway: run the test file with
//   node --import <sdk>/testing/register.js --test
// and import the plugin module (it registers its class), then:
//
//   import { TestHost, TestRequest, TestResponse, reset, status } from "wasmgate-plugin/testing";
//   const h = new TestHost({ deny_header: "x-deny" });
//   assert.equal(status(h.requestHeaders(new TestRequest("GET", "/", { "x-deny": "1" }))), 403);

import { guest } from "../guest.js";
import { resetState, state } from "./host.js";

/** A fresh host: no kv entries, logs or metrics; the store up; the real clock. */
export const reset = resetState;
/** `[level, message]` pairs the plugin logged. */
export const logs = () => [...state.logs];
/** Counter values by name (numbers). */
export const metrics = () => Object.fromEntries([...state.metrics].map(([k, v]) => [k, typeof v === "bigint" ? Number(v) : v]));
export const setKvDown = (down = true) => (state.kvDown = down);
export const setClockMs = (ms) => (state.nowMs = ms);
/** `handler(outgoing)` answers requests whose URL starts with `prefix`: return
 * `{status, headers, body}`, or throw `{payload: {tag: "timeout"}}` to fail it. */
export function mockHttp(prefix, handler) {
  state.http.push([
    prefix,
    (req) => {
      const r = handler(req);
      const body = typeof r.body === "string" ? new TextEncoder().encode(r.body) : (r.body ?? new Uint8Array());
      return { status: r.status, headers: r.headers ?? [], body };
    },
  ]);
}

const refused = (why) => ({ payload: why });

function checkHeader(name, value) {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw refused(`\`${name}\` is not a header name`);
  if (/[^\t\x20-\x7e]/.test(value)) throw refused("the header value has a control or non-ASCII character");
}

class Headers {
  constructor(headers = {}) {
    this.headers = Object.entries(headers).map(([k, v]) => [k.toLowerCase(), String(v)]);
    this.bodyBytes = undefined;
  }
  header(name) {
    return this.headers.find(([k]) => k === name.toLowerCase())?.[1];
  }
  headerAll(name) {
    return this.headers.filter(([k]) => k === name.toLowerCase()).map(([, v]) => v);
  }
  headerNames() {
    return [...new Set(this.headers.map(([k]) => k))];
  }
  setHeader(name, value) {
    checkHeader(name, value);
    this.removeHeader(name);
    this.headers.push([name.toLowerCase(), value]);
  }
  appendHeader(name, value) {
    checkHeader(name, value);
    this.headers.push([name.toLowerCase(), value]);
  }
  removeHeader(name) {
    this.headers = this.headers.filter(([k]) => k !== name.toLowerCase());
  }
  body() {
    return this.bodyBytes;
  }
  setBody(body) {
    this.bodyBytes = body;
  }
  skipBody() {
    this.bodySkipped = true;
  }
}

const bytes = (b) => (typeof b === "string" ? new TextEncoder().encode(b) : b);

/** A request as the gateway would hand it to a plugin. */
export class TestRequest extends Headers {
  constructor(method = "GET", target = "/", headers = {}, body = undefined, clientIp = "127.0.0.1") {
    super(headers);
    const [path, query] = target.split("?", 2);
    Object.assign(this, { methodV: method, pathV: path, queryV: query, clientIpV: clientIp });
    this.bodyBytes = bytes(body);
    this.context = new Map();
    this.upstream = undefined;
  }
  method() {
    return this.methodV;
  }
  path() {
    return this.pathV;
  }
  setPath(path) {
    if (!path.startsWith("/")) throw refused("a path starts with /");
    this.pathV = path;
  }
  query() {
    return this.queryV;
  }
  setQuery(q) {
    this.queryV = q;
  }
  authority() {
    return this.header("host") ?? "example.test";
  }
  scheme() {
    return "http";
  }
  clientIp() {
    return this.clientIpV;
  }
  routeName() {
    return "test";
  }
  pathParam() {
    return undefined;
  }
  setUpstream(upstream, target) {
    this.upstream = [upstream, target];
  }
  contextGet(key) {
    return this.context.get(key);
  }
  contextSet(key, value) {
    this.context.set(key, value);
  }
}

/** An upstream's response on its way back. */
export class TestResponse extends Headers {
  constructor(status = 200, headers = {}, body = undefined) {
    super(headers);
    this.statusV = status;
    this.bodyBytes = bytes(body);
  }
  status() {
    return this.statusV;
  }
  setStatus(s) {
    if (s < 100 || s > 599) throw refused(`${s} is not an HTTP status`);
    this.statusV = s;
  }
}

/** The module's plugin class, initialized with `config` as the gateway would: a refused config
 * throws an Error with the gateway's message. */
export class TestHost {
  constructor(config = {}) {
    try {
      this.phases = guest.init(JSON.stringify(config));
    } catch (e) {
      throw new Error(typeof e === "string" ? e : (e?.message ?? String(e)));
    }
  }
  requestHeaders(req) {
    return guest.onRequestHeaders(req);
  }
  requestBody(req) {
    return req.bodySkipped ? { tag: "continue" } : guest.onRequestBody(req);
  }
  responseHeaders(req, resp) {
    return guest.onResponseHeaders(req, resp);
  }
  responseBody(req, resp) {
    return resp.bodySkipped ? { tag: "continue" } : guest.onResponseBody(req, resp);
  }
}

/** 200 for "go on", else the answer's status. */
export const status = (action) => (action.tag === "respond" ? action.val.status : 200);
/** The answer of an action, or undefined when it goes on. */
export const answer = (action) => (action.tag === "respond" ? action.val : undefined);
