#!/usr/bin/env bash
# The cost of request metrics: two gateways from one binary and one config but for
# `[metrics] enabled` (on: every request, try, plugin call and kv operation counted; off: none),
# each one worker in front of the same nginx upstream (1 KiB body), wrk -c64. Measured on the
# plain route and on a route with 3 light plugins (set-context -> headers -> deny: 3 plugin calls
# counted per request). A third gateway, metrics on too, is the control: how much two identical
# gateways differ on this machine. The runs rotate over $ROUNDS rounds, so drift and order hit
# all alike. Prints rps, ratios and p99. Not a test: numbers depend on the machine.
#
#   bench/metrics.sh                  # 10 s per run, 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
. bench/common.sh
UP=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
nginx_conf upstream "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { default_type text/plain; return 200 '$body'; } }"

declare -A port pid
gateway() { # name, metrics on|off: writes $work/NAME.toml and starts it
  local WG ADMIN
  WG=$(free_port); ADMIN=$(free_port)
  { gateway_head; cat <<CONF; } > "$work/$1.toml"
[metrics]
enabled = $2
[plugins.set-context]
file = "$PLUGINS/set_context.wasm"
[plugins.headers]
file = "$PLUGINS/headers.wasm"
[plugins.deny]
file = "$PLUGINS/deny.wasm"
[[routes]]
path_prefix = "/plain"
upstream = "up"
[[routes]]
path_prefix = "/chain"
upstream = "up"
plugins = $LIGHT_CHAIN
CONF
  "$GW" run -c "$work/$1.toml" > "$work/$1.log" 2>&1 &
  pids+=($!)
  port[$1]=$WG
  pid[$1]=$!
}
gateway on true
gateway off false
gateway control true
for g in on off control; do wait_for "http://127.0.0.1:${port[$g]}/chain"; done

declare -A sum cpu
runs=("on plain" "off plain" "control plain" "on chain" "off chain" "control chain")
for round in $(seq "$ROUNDS"); do
  for i in "${!runs[@]}"; do
    set -- ${runs[$(( (i + round) % ${#runs[@]} ))]}
    url="http://127.0.0.1:${port[$1]}/$2"
    r=$(measure_rps "$url")
    sum[$1-$2]=$(awk -v a="${sum[$1-$2]:-0}" -v b="$r" 'BEGIN { print a + b }')
    if [ -n "$perf_ok" ]; then
      c=$(cpu_us "${pid[$1]}" "$url")
      cpu[$1-$2]=$(awk -v a="${cpu[$1-$2]:-0}" -v b="$c" 'BEGIN { print a + b }')
    fi
  done
done
avg() { awk -v s="${sum[$1]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }'; }
for route in plain chain; do
  awk -v r="$route" -v on="$(avg on-$route)" -v off="$(avg off-$route)" -v c="$(avg control-$route)" 'BEGIN {
    printf "%s: metrics off %d rps, on %d rps, control (on) %d rps: cost %.1f%% (on and control vs off: %.1f%%); noise floor (on vs control) %.1f%%\n",
      r, off, on, c, (1 - on / off) * 100, (1 - (on + c) / 2 / off) * 100, (on > c ? on / c - 1 : c / on - 1) * 100 }'
  if [ -n "$perf_ok" ]; then
    awk -v r="$route" -v on="${cpu[on-$route]}" -v off="${cpu[off-$route]}" -v c="${cpu[control-$route]}" -v n="$ROUNDS" 'BEGIN {
      printf "%s: gateway CPU per request: off %.2f us, on %.2f us, control %.2f us: cost %+.1f%% (on and control vs off)\n",
        r, off / n, on / n, c / n, ((on + c) / 2 / off - 1) * 100 }'
  fi
done
p99_report
