#!/usr/bin/env node
// `wasmgate-plugin-build plugin.js -o plugin.wasm`: a JavaScript plugin module into a
// WebAssembly component for the gateway. The module and this SDK are bundled into one file
// (rolldown), then componentize-js builds the component against the SDK's copy of the contract,
// without the `fetch` and `wasi:http` parts the gateway does not provide to plugins.
//
// `wasmgate-plugin-build --handler handler.js -o handler.wasm`: a route handler instead, a
// standard `wasi:http/incoming-handler` component whose module answers `fetch` events
// (`addEventListener("fetch", e => e.respondWith(...))`), with `fetch` for outbound calls.

import { realpathSync } from "node:fs";
import { mkdtemp, rm, writeFile, rename } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { componentize } from "@bytecodealliance/componentize-js";
import { rolldown } from "rolldown";

const SDK = dirname(fileURLToPath(import.meta.url));

export async function build(app, out, { handler = false } = {}) {
  app = resolve(app);
  out = resolve(out);
  const work = await mkdtemp(join(tmpdir(), "wasmgate-plugin-"));
  try {
    const entry = join(work, "entry.js");
    const exports = handler ? "" : `export { guest } from "wasmgate-plugin/guest";\n`;
    await writeFile(entry, `import ${JSON.stringify(app)};\n${exports}`);
    const bundle = await rolldown({
      input: entry,
      external: [/^wasmgate:/],
      resolve: { alias: { "wasmgate-plugin/guest": join(SDK, "guest.js"), "wasmgate-plugin": join(SDK, "index.js") } },
      logLevel: "warn",
    });
    const bundled = join(work, "bundle.js");
    await bundle.write({ file: bundled, format: "esm" });
    const { component } = await componentize(
      handler
        ? { sourcePath: bundled, witPath: join(SDK, "wit-http"), worldName: "handler" }
        : {
            sourcePath: bundled,
            witPath: join(SDK, "wit"),
            worldName: "plugin",
            disableFeatures: ["http", "fetch-event"],
          },
    );
    // Written beside the target and renamed: a gateway watching `out` never loads half a file.
    const partial = join(dirname(out), `.${basename(out)}.partial`);
    await writeFile(partial, component);
    await rename(partial, out);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// Run as a command (also through node_modules/.bin's link), not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    options: { output: { type: "string", short: "o" }, handler: { type: "boolean" } },
    allowPositionals: true,
  });
  if (positionals.length !== 1 || !values.output) {
    console.error("usage: wasmgate-plugin-build [--handler] plugin.js -o plugin.wasm");
    process.exit(2);
  }
  try {
    await build(positionals[0], values.output, { handler: values.handler });
  } catch (e) {
    console.error(`wasmgate-plugin-build: ${e?.message ?? e}`);
    process.exit(1);
  }
}
