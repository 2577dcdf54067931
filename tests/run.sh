#!/usr/bin/env bash
# The whole test suite, from a machine that has only the Rust toolchain: installs what the tests
# need, then checks formatting and lints, then runs every test against the release build.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages the tests use as real peers.
need=()
command -v curl >/dev/null || need+=(curl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v etcd >/dev/null || need+=(etcd-server)
command -v openssl >/dev/null || need+=(openssl)
# promtool, which lints a metrics scrape.
command -v promtool >/dev/null || need+=(prometheus)
# A real browser for the admin dashboard's test.
command -v chromium >/dev/null || need+=(chromium)
# The JavaScript and Python plugin tools (plugins/build.sh installs their pinned packages).
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# Each step says how long it took, so the slow ones are known (the budget: well under 30 min).
step() {
  local started=$SECONDS
  "$@"
  echo "== $* ($((SECONDS - started)) s)" >&2
}
# The plugins the tests load, as real components (adds the wasm32-wasip2 target if missing).
step plugins/build.sh
# The Python plugins' own unit tests, on the SDK's native test host.
python_plugin_tests() {
  for dir in plugins/python/*/; do
    target/py/bin/python -m unittest discover -q -s "$dir" -p 'test_*.py'
  done
}
step python_plugin_tests
# The JavaScript plugins' own unit tests, on the SDK's native test host (node's test runner).
js_plugin_tests() {
  for dir in plugins/js/*/; do
    node --import ./plugin-sdk/js/testing/register.js --test --test-reporter=dot "$dir"
  done
}
step js_plugin_tests
step cargo fmt --all -- --check
# Lints run inside the release build the tests use: clippy's driver compiles the workspace's
# own crates (what `cargo clippy` does, minus its separate check build of every dependency),
# so the workspace is compiled once, not twice. Same lints and `-D warnings` as
# `cargo clippy --workspace --all-targets -- -D warnings`.
RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export RUSTC_WORKSPACE_WRAPPER
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
step cargo build --workspace --release --benches
# Release build: the end-to-end tests run the gateway as users do.
step cargo test --workspace --release
echo "== tests/run.sh: $SECONDS s in all" >&2
