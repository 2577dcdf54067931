// Module resolution hooks for native tests (see register.js).
const sdk = new URL("../", import.meta.url);
const MAP = {
  "wasmgate-plugin": new URL("index.js", sdk).href,
  "wasmgate-plugin/guest": new URL("guest.js", sdk).href,
  "wasmgate-plugin/testing": new URL("testing/index.js", sdk).href,
};
const HOST = new URL("host.js", import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith("wasmgate:plugin/")) return { url: HOST, shortCircuit: true };
  if (specifier in MAP) return { url: MAP[specifier], shortCircuit: true };
  return next(specifier, context);
}
