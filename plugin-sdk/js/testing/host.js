// The host, faked for native tests: every `wasmgate:plugin/*` import resolves here. State is
// read and set through `wasmgate-plugin/testing`.

export const state = {
  logs: [],
  kv: new Map(),
  local: new Map(),
  kvDown: false,
  metrics: new Map(),
  nowMs: undefined,
  http: [],
};

export function resetState() {
  state.logs = [];
  state.kv = new Map();
  state.local = new Map();
  state.kvDown = false;
  state.metrics = new Map();
  state.nowMs = undefined;
  state.http = [];
}

// log
export function log(level, message) {
  state.logs.push([level, message]);
}

// clock
export const wallMs = () => BigInt(state.nowMs ?? Date.now());
export const monotonicNs = () => process.hrtime.bigint();

// metrics
export function counterAdd(name, value) {
  state.metrics.set(name, (state.metrics.get(name) ?? 0n) + BigInt(value));
}
export function histogramRecord(name, value) {
  state.metrics.set(`${name}:samples`, [...(state.metrics.get(`${name}:samples`) ?? []), value]);
}

// kv: errors thrown the way componentize-js throws a `result` error
const up = () => {
  if (state.kvDown) throw { payload: { tag: "unavailable", val: "the test host's store is down" } };
};
export function get(key) {
  up();
  return state.kv.get(key);
}
export function set(key, value) {
  up();
  state.kv.set(key, new Uint8Array(value));
}
function remove(key) {
  up();
  state.kv.delete(key);
}
export { remove as delete };
function add(store, key, delta) {
  const text = store.has(key) ? new TextDecoder().decode(store.get(key)) : "0";
  if (!/^-?\d+$/.test(text)) throw { payload: { tag: "invalid", val: `\`${key}\` does not hold a number` } };
  const n = BigInt(text) + BigInt(delta);
  store.set(key, new TextEncoder().encode(String(n)));
  return n;
}
export function incr(key, delta) {
  up();
  return add(state.kv, key, delta);
}
export const localIncr = (key, delta) => add(state.local, key, delta);
const same = (a, b) => (a === undefined ? b === undefined : b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]));
export function compareAndSwap(key, expected, value) {
  up();
  if (!same(expected, state.kv.get(key))) return false;
  state.kv.set(key, new Uint8Array(value));
  return true;
}

// http-client
export function send(req) {
  const mock = state.http.find(([prefix]) => req.url.startsWith(prefix));
  if (!mock) throw { payload: { tag: "not-allowed", val: `${req.url} is not mocked in the test host` } };
  return mock[1](req);
}
export function sendAll(reqs) {
  return reqs.map((r) => {
    try {
      return { tag: "ok", val: send(r) };
    } catch (e) {
      return { tag: "err", val: e.payload };
    }
  });
}
