#!/usr/bin/env bash
# Builds every plugin in plugins/ into a WebAssembly component: target/plugins/<name>.wasm.
# Replacing a file there while the gateway runs hot-swaps that plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -qx wasm32-wasip2
cargo build --quiet --target wasm32-wasip2 --profile plugin --workspace --exclude wasmgate
mkdir -p target/plugins
for dir in plugins/*/; do
  [ -f "$dir/Cargo.toml" ] || continue
  name=$(basename "$dir" | tr - _)
  src="target/wasm32-wasip2/plugin/$name.wasm"
  # Copy through a temporary name: the gateway never sees a half-written plugin.
  if ! cmp -s "$src" "target/plugins/$name.wasm"; then
    cp "$src" "target/plugins/.$name.wasm.tmp" && mv "target/plugins/.$name.wasm.tmp" "target/plugins/$name.wasm"
  fi
done
# Plugins in Python: the SDK (plugin-sdk/python) and the componentize-py it pins, in the
# project's own virtualenv. A build takes seconds: only plugins whose sources, the SDK or the
# contract changed are rebuilt.
venv=target/py
if [ ! -x "$venv/bin/wasmgate-plugin-build" ] || [ plugin-sdk/python/pyproject.toml -nt "$venv/.installed" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -e plugin-sdk/python
  touch "$venv/.installed"
fi
for dir in plugins/python/*/; do
  out="target/plugins/python_$(basename "$dir" | tr - _).wasm"
  if [ ! -f "$out" ] || [ -n "$(find "$dir" plugin-sdk/python/wasmgate_plugin/ wit \( -name '*.py' -o -name '*.wit' \) -newer "$out" | head -1)" ]; then
    "$venv/bin/wasmgate-plugin-build" "$dir/app.py" -o "$out"
  fi
done
# Plugins in JavaScript: the SDK (plugin-sdk/js) with componentize-js and rolldown as its
# package-lock.json pins them (npm ci), rebuilt like the Python ones only when changed.
sdk=plugin-sdk/js
if [ ! -d "$sdk/node_modules" ] || [ "$sdk/package-lock.json" -nt "$sdk/node_modules/.package-lock.json" ]; then
  (cd "$sdk" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
for dir in plugins/js/*/; do
  out="target/plugins/js_$(basename "$dir" | tr - _).wasm"
  if [ ! -f "$out" ] || [ -n "$(find "$dir" "$sdk" wit -path "$sdk/node_modules" -prune -o \( -name '*.js' -o -name '*.wit' \) -newer "$out" -print | head -1)" ]; then
    node "$sdk/build.js" "$dir/plugin.js" -o "$out"
  fi
done
echo "plugins built: $(ls target/plugins/*.wasm | wc -l) in target/plugins/"
