#!/usr/bin/env bash
# Builds every plugin in plugins/ into a WebAssembly component: target/plugins/<name>.wasm.
# Replacing a file there while the gateway runs hot-swaps that plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -qx wasm32-wasip2
cargo build --quiet --target wasm32-wasip2 --profile plugin --workspace --exclude wasmgate
mkdir -p target/plugins
for dir in plugins/*/; do
  name=$(basename "$dir" | tr - _)
  src="target/wasm32-wasip2/plugin/$name.wasm"
  # Copy through a temporary name: the gateway never sees a half-written plugin.
  if ! cmp -s "$src" "target/plugins/$name.wasm"; then
    cp "$src" "target/plugins/.$name.wasm.tmp" && mv "target/plugins/.$name.wasm.tmp" "target/plugins/$name.wasm"
  fi
done
echo "plugins built: $(ls target/plugins/*.wasm | wc -l) in target/plugins/"
