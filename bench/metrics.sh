#!/usr/bin/env bash
# The cost of request metrics and of tracing: gateways from one binary and one config but for
# `[metrics] enabled` and `[tracing]`, each one worker in front of the same nginx upstream
# (1 KiB body), wrk -c64:
#   off       metrics off, no tracing
#   on        metrics on (every request, try, plugin call and kv operation counted)
#   control   the same as `on`: how much two identical gateways differ on this machine
#   sampled   metrics on + [tracing] sample_ratio = 1.0 (every request exported, to a sink that
#             answers 200: nginx)
#   unsampled metrics on + [tracing] sample_ratio = 0.0 (trace context made and sent upstream,
#             nothing recorded)
# Measured on the plain route and on a route with 3 light plugins (set-context -> headers ->
# deny). The runs rotate over $ROUNDS rounds, so drift and order hit all alike. Prints rps, CPU
# per request (perf), ratios and p99. Not a test: numbers depend on the machine.
#
#   bench/metrics.sh                  # 10 s per run, 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
. bench/common.sh
UP=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
nginx_conf upstream "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { default_type text/plain; return 200 '$body'; } location /v1/traces { return 200; } }"

declare -A port pid
gateway() { # name, metrics true|false, [sample ratio]: writes $work/NAME.toml and starts it
  local WG ADMIN tracing=""
  WG=$(free_port); ADMIN=$(free_port)
  if [ -n "${3:-}" ]; then
    tracing="[tracing]
endpoint = \"http://127.0.0.1:$UP/v1/traces\"
sample_ratio = $3"
  fi
  { gateway_head; cat <<CONF; } > "$work/$1.toml"
[metrics]
enabled = $2
$tracing
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
gateway sampled true 1.0
gateway unsampled true 0.0
names=(on off control sampled unsampled)
for g in "${names[@]}"; do wait_for "http://127.0.0.1:${port[$g]}/chain"; done

declare -A sum cpu
runs=()
for route in plain chain; do for g in "${names[@]}"; do runs+=("$g $route"); done; done
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
  awk -v r="$route" -v on="$(avg on-$route)" -v off="$(avg off-$route)" -v c="$(avg control-$route)" \
      -v s="$(avg sampled-$route)" -v u="$(avg unsampled-$route)" 'BEGIN {
    base = (on + c) / 2
    printf "%s: metrics off %d rps, on %d rps, control (on) %d rps: cost %.1f%% (on and control vs off: %.1f%%); noise floor (on vs control) %.1f%%\n",
      r, off, on, c, (1 - on / off) * 100, (1 - base / off) * 100, (on > c ? on / c - 1 : c / on - 1) * 100
    printf "%s: tracing sampled %d rps (cost %.1f%%), unsampled %d rps (cost %.1f%%), vs metrics on and control\n",
      r, s, (1 - s / base) * 100, u, (1 - u / base) * 100 }'
  if [ -n "$perf_ok" ]; then
    awk -v r="$route" -v on="${cpu[on-$route]}" -v off="${cpu[off-$route]}" -v c="${cpu[control-$route]}" \
        -v s="${cpu[sampled-$route]}" -v u="${cpu[unsampled-$route]}" -v n="$ROUNDS" 'BEGIN {
      base = (on + c) / 2
      printf "%s: gateway CPU per request: off %.2f us, on %.2f us, control %.2f us: cost %+.1f%% (on and control vs off)\n",
        r, off / n, on / n, c / n, (base / off - 1) * 100
      printf "%s: gateway CPU per request: sampled %.2f us (%+.1f%%), unsampled %.2f us (%+.1f%%), vs on and control\n",
        r, s / n, (s / base - 1) * 100, u / n, (u / base - 1) * 100 }'
  fi
done
p99_report
