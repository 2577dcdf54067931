// `node --import <this file> --test ...`: runs a plugin natively for its unit tests. The
// contract's imports (`wasmgate:plugin/*`) resolve to the fake host in host.js, and
// `wasmgate-plugin` to this SDK, so a plugin folder needs no node_modules of its own.
import { register } from "node:module";

register(new URL("./hooks.js", import.meta.url));
