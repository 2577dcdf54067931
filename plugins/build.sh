#!/usr/bin/env bash
# Builds every plugin in plugins/ into a WebAssembly component in target/plugins/: the Rust
# crates (<name>.wasm), plugins/python/<name> (python_<name>.wasm) and plugins/js/<name>
# (js_<name>.wasm; a route handler where the folder has handler.js). Replacing a file there
# while the gateway runs hot-swaps that plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/plugins

# The Python and JavaScript tools, pinned by their SDKs, installed in the project's own places
# (a virtualenv in target/py; npm ci in plugin-sdk/js). Mostly downloads: done while cargo
# compiles, and only when missing or when the pins changed.
venv=target/py
sdk_js=plugin-sdk/js
install_python() {
  if [ ! -x "$venv/bin/wasmgate-plugin-build" ] || [ plugin-sdk/python/pyproject.toml -nt "$venv/.installed" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -e plugin-sdk/python
    touch "$venv/.installed"
  fi
}
install_js() {
  if [ ! -d "$sdk_js/node_modules" ] || [ "$sdk_js/package-lock.json" -nt "$sdk_js/node_modules/.package-lock.json" ]; then
    (cd "$sdk_js" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}
install_python > target/py-install.log 2>&1 &
py_pid=$!
install_js > target/js-install.log 2>&1 &
js_pid=$!

rustup target add wasm32-wasip2 >/dev/null 2>&1 || rustup target list --installed | grep -qx wasm32-wasip2
cargo build --quiet --target wasm32-wasip2 --profile plugin --workspace --exclude wasmgate
for dir in plugins/*/; do
  [ -f "$dir/Cargo.toml" ] || continue
  name=$(basename "$dir" | tr - _)
  src="target/wasm32-wasip2/plugin/$name.wasm"
  # Copy through a temporary name: the gateway never sees a half-written plugin.
  if ! cmp -s "$src" "target/plugins/$name.wasm"; then
    cp "$src" "target/plugins/.$name.wasm.tmp" && mv "target/plugins/.$name.wasm.tmp" "target/plugins/$name.wasm"
  fi
done

# A build takes seconds: only plugins whose sources, SDK or contract changed are rebuilt (the
# build tools write through a temporary name too).
changed() { # out, then the folders whose files it is built from
  local out=$1
  shift
  [ ! -f "$out" ] || [ -n "$(find "$@" -path '*/node_modules' -prune -o -path '*/__pycache__' -prune \
    -o \( -name '*.py' -o -name '*.js' -o -name '*.wit' \) -newer "$out" -print | head -1)" ]
}
wait "$py_pid" || { cat target/py-install.log >&2; echo "installing the Python plugin tools failed" >&2; exit 1; }
for dir in plugins/python/*/; do
  out="target/plugins/python_$(basename "$dir" | tr - _).wasm"
  if changed "$out" "$dir" plugin-sdk/python/wasmgate_plugin wit; then
    "$venv/bin/wasmgate-plugin-build" "$dir/app.py" -o "$out"
  fi
done
wait "$js_pid" || { cat target/js-install.log >&2; echo "installing the JavaScript plugin tools failed" >&2; exit 1; }
for dir in plugins/js/*/; do
  out="target/plugins/js_$(basename "$dir" | tr - _).wasm"
  if changed "$out" "$dir" "$sdk_js" wit; then
    # A folder with handler.js holds a route handler (wasi:http), else a plugin.
    if [ -f "$dir/handler.js" ]; then
      node "$sdk_js/build.js" --handler "$dir/handler.js" -o "$out"
    else
      node "$sdk_js/build.js" "$dir/plugin.js" -o "$out"
    fi
  fi
done
echo "plugins built: $(ls target/plugins/*.wasm | wc -l) in target/plugins/"
