// The plugin class, and the request and response it gets in each phase.

import { toBytes } from "./answer.js";

export const PHASES = ["onRequestHeaders", "onRequestBody", "onResponseHeaders", "onResponseBody", "onLog"];

let registered = null;

/** Marks the module's plugin class (one per plugin). */
export function plugin(cls) {
  if (!(typeof cls === "function" && cls.prototype instanceof Plugin)) {
    throw new TypeError("plugin() takes a class that extends Plugin");
  }
  registered = cls;
  return cls;
}

export function registeredPlugin() {
  if (!registered) throw new Error("no plugin class: call plugin(YourClass) in your module");
  return registered;
}

/**
 * Extend it and implement the phases you need; the gateway calls only those. The constructor
 * gets the config as an object; throw ConfigError (or anything) to refuse it. A phase returns
 * nothing to go on, or an Answer. Set `static rawBody = true` for bodies still gzip/br encoded.
 */
export class Plugin {
  static rawBody = false;

  constructor(_config) {}

  /** The phase methods this class implements. */
  static implemented() {
    return PHASES.filter((p) => typeof this.prototype[p] === "function" && this.prototype[p] !== Plugin.prototype[p]);
  }
}

/** A host call that returns `result<_, string>`, its error thrown as an Error with the text. */
export function checked(f) {
  try {
    return f();
  } catch (e) {
    throw new Error(e?.payload ?? e?.message ?? String(e));
  }
}

class Headers {
  constructor(handle) {
    this.h = handle;
  }
  header(name) {
    return this.h.header(name);
  }
  headerAll(name) {
    return this.h.headerAll(name);
  }
  headerNames() {
    return this.h.headerNames();
  }
  setHeader(name, value) {
    checked(() => this.h.setHeader(name, String(value)));
  }
  appendHeader(name, value) {
    checked(() => this.h.appendHeader(name, String(value)));
  }
  removeHeader(name) {
    this.h.removeHeader(name);
  }
  body() {
    return this.h.body();
  }
  setBody(body) {
    this.h.setBody(toBytes(body));
  }
  /** In a headers phase: this plugin does not need the body; its body phase is not called,
   * and when no plugin needs the body it streams unread. */
  skipBody() {
    this.h.skipBody();
  }
}

/** The request as it will be sent upstream. */
export class Request extends Headers {
  method() {
    return this.h.method();
  }
  path() {
    return this.h.path();
  }
  setPath(path) {
    checked(() => this.h.setPath(path));
  }
  query() {
    return this.h.query();
  }
  setQuery(query) {
    checked(() => this.h.setQuery(query));
  }
  authority() {
    return this.h.authority();
  }
  scheme() {
    return this.h.scheme();
  }
  clientIp() {
    return this.h.clientIp();
  }
  routeName() {
    return this.h.routeName();
  }
  pathParam(name) {
    return this.h.pathParam(name);
  }
  setUpstream(upstream, target) {
    checked(() => this.h.setUpstream(upstream, target));
  }
  contextGet(key) {
    return this.h.contextGet(key);
  }
  contextSet(key, value) {
    this.h.contextSet(key, String(value));
  }
}

/** The upstream's response (or the gateway's own error answer) on its way back. */
export class Response extends Headers {
  status() {
    return this.h.status();
  }
  setStatus(status) {
    checked(() => this.h.setStatus(status));
  }
}
