// The host's capabilities: the shared key-value store, outbound HTTP, metrics, clocks.

import * as hostKv from "wasmgate:plugin/kv@0.2.0";
import * as hostHttp from "wasmgate:plugin/http-client@0.2.0";
import * as hostMetrics from "wasmgate:plugin/metrics@0.2.0";
import * as hostClock from "wasmgate:plugin/clock@0.2.0";
import { toBytes } from "./answer.js";

/** The store cannot be reached now (`kv.Unavailable`), or the call does not fit the value. */
class KvUnavailable extends Error {}
class KvInvalid extends Error {}

function kvCall(f) {
  try {
    return f();
  } catch (e) {
    const p = e?.payload;
    if (p?.tag === "unavailable") throw new KvUnavailable(p.val);
    if (p?.tag === "invalid") throw new KvInvalid(p.val);
    throw e;
  }
}

const ms = (ttlS) => (ttlS === undefined || ttlS === null ? undefined : BigInt(Math.round(ttlS * 1000)));

/**
 * The gateway's shared key-value store (in-process, or Redis when configured); keys are private
 * to the plugin. Every call may throw kv.Unavailable when the backend is down.
 */
export const kv = {
  Unavailable: KvUnavailable,
  Invalid: KvInvalid,
  get: (key) => kvCall(() => hostKv.get(key)),
  set: (key, value, ttlS) => kvCall(() => hostKv.set(key, toBytes(value), ms(ttlS))),
  delete: (key) => kvCall(() => hostKv.delete(key)),
  /** Adds `delta` atomically; a missing key counts as 0 and gets `ttlS` when created. */
  incr: (key, delta = 1, ttlS) => Number(kvCall(() => hostKv.incr(key, BigInt(delta), ms(ttlS)))),
  /**
   * Sets `key` to `value` only if it holds `expected` now (null: only if missing), atomically for
   * every gateway on the store; false when another request changed it first (read and retry).
   */
  compareAndSwap: (key, expected, value, ttlS) =>
    kvCall(() =>
      hostKv.compareAndSwap(key, expected === null || expected === undefined ? undefined : toBytes(expected), toBytes(value), ms(ttlS)),
    ),
  /** `incr` on this gateway's own in-process store: a fallback when the shared one is down. */
  localIncr: (key, delta = 1, ttlS) => Number(hostKv.localIncr(key, BigInt(delta), ms(ttlS))),
};

/** An outbound call that got no response; `kind` is timeout, refused, not-allowed, too-large or invalid. */
class HttpError extends Error {
  constructor(kind, message) {
    super(message ?? kind);
    this.kind = kind;
  }
}

const outgoing = ({ method = "GET", url, headers = {}, body, timeoutMs }) => ({
  method,
  url,
  headers: Object.entries(headers).map(([k, v]) => [k, String(v)]),
  body: toBytes(body),
  timeoutMs,
});

const incoming = (r) => ({
  status: r.status,
  headers: r.headers,
  body: r.body,
  header(name) {
    const n = name.toLowerCase();
    return r.headers.find(([k]) => k.toLowerCase() === n)?.[1];
  },
  text() {
    return new TextDecoder().decode(r.body);
  },
});

const httpError = (p) => new HttpError(p?.tag ?? "error", p?.val);

/** Outbound HTTP, only to upstreams the plugin's config allows: URLs are `http://UPSTREAM/path`. */
export const http = {
  HttpError,
  send(req) {
    try {
      return incoming(hostHttp.send(outgoing(req)));
    } catch (e) {
      throw httpError(e?.payload);
    }
  },
  /** Every request at once; in order, a response or an HttpError for each. */
  sendAll(reqs) {
    return hostHttp.sendAll(reqs.map(outgoing)).map((r) => (r.tag === "ok" ? incoming(r.val) : httpError(r.val)));
  },
};

/** Metrics on the gateway's metrics endpoint, named after the plugin. */
export const metrics = {
  counterAdd: (name, value = 1, labels = {}) => hostMetrics.counterAdd(name, BigInt(value), Object.entries(labels)),
  histogramRecord: (name, value, labels = {}) => hostMetrics.histogramRecord(name, value, Object.entries(labels)),
};

export const clock = {
  /** Milliseconds since the Unix epoch. */
  wallMs: () => Number(hostClock.wallMs()),
  /** Nanoseconds from an arbitrary start, as a BigInt; only differences mean something. */
  monotonicNs: () => hostClock.monotonicNs(),
};
