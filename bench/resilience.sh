#!/usr/bin/env bash
# The cost of resilience on the plain path: a route whose upstream has a retry policy (budget,
# kept bodies) and a circuit breaker (run and ratio) vs the same route without, and a 90/10 split
# route vs a plain one; nginx plain and nginx `split_clients` side by side for scale. One worker
# each, in front of the same nginx upstream (1 KiB body), wrk -c64; the runs alternate over
# $ROUNDS rounds, each round starting one run later, so drift and order hit all alike. A control
# route (an upstream like the plain one, no retry or breaker) shows the noise floor. Prints rps, the ratios and p99. Not a test: numbers
# depend on the machine.
#
#   bench/resilience.sh               # 10 s per run, 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
. bench/common.sh
UP=$(free_port); NG=$(free_port); WG=$(free_port); ADMIN=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' 'x')
nginx_conf upstream "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { default_type text/plain; return 200 '$body'; } }"
nginx_conf proxy "upstream a { server 127.0.0.1:$UP; keepalive 128; }
  upstream b { server 127.0.0.1:$UP; keepalive 128; }
  split_clients \"\${remote_port}\${request_id}\" \$side { 90% a; * b; }
  server { listen 127.0.0.1:$NG; keepalive_requests 1000000;
    proxy_http_version 1.1; proxy_set_header Connection \"\";
    location /plain { proxy_pass http://a; }
    location /split { proxy_pass http://\$side; } }"

{ gateway_head; cat <<CONF; } > "$work/gateway.toml"
[upstreams.guarded]
targets = ["127.0.0.1:$UP"]
retry = { attempts = 3, per_try_timeout = "2s" }
breaker = { failures = 5, failure_ratio = 0.5 }
[upstreams.canary]
targets = ["127.0.0.1:$UP"]
[upstreams.control]
targets = ["127.0.0.1:$UP"]
[[routes]]
path_prefix = "/control"
upstream = "control"
[[routes]]
path_prefix = "/plain"
upstream = "up"
[[routes]]
path_prefix = "/guarded"
upstream = "guarded"
[[routes]]
path_prefix = "/split"
split = { up = 90, canary = 10 }
CONF
start_gateway
gwpid=${pids[${#pids[@]}-1]}
wait_for "http://127.0.0.1:$WG/plain" "http://127.0.0.1:$NG/plain"

declare -A cpu
declare -A sum
runs=("wg-plain $WG/plain" "wg-guarded $WG/guarded" "wg-control $WG/control" "wg-split $WG/split" "nginx-plain $NG/plain" "nginx-split $NG/split")
for round in $(seq "$ROUNDS"); do
  for i in "${!runs[@]}"; do
    set -- ${runs[$(( (i + round) % ${#runs[@]} ))]}
    r=$(measure_rps "http://127.0.0.1:$2")
    sum[$1]=$(awk -v a="${sum[$1]:-0}" -v b="$r" 'BEGIN { print a + b }')
  done
  if [ -n "$perf_ok" ]; then
    for run in "wg-plain $WG/plain" "wg-guarded $WG/guarded" "wg-control $WG/control"; do
      set -- $run
      c=$(cpu_us "$gwpid" "http://127.0.0.1:$2")
      cpu[$1]=$(awk -v a="${cpu[$1]:-0}" -v b="$c" 'BEGIN { print a + b }')
    done
  fi
done
avg() { awk -v s="${sum[$1]}" -v n="$ROUNDS" 'BEGIN { printf "%.0f", s / n }'; }
p=$(avg wg-plain); g=$(avg wg-guarded); c=$(avg wg-control); s=$(avg wg-split); np=$(avg nginx-plain); ns=$(avg nginx-split)
awk -v p="$p" -v g="$g" -v c="$c" -v s="$s" -v np="$np" -v ns="$ns" 'BEGIN {
  printf "wasmgate plain %d rps, control (the same, another upstream) %d rps = %.3fx: the noise floor\n", p, c, c / p
  printf "with retry + breaker %d rps = %.3fx of plain, %.3fx of control (overhead %.1f%% against their mean)\n", g, g / p, g / c, (1 - 2 * g / (p + c)) * 100
  printf "split 90/10 %d rps = %.3fx of plain\n", s, s / p
  printf "nginx plain %d rps; nginx split_clients %d rps = %.3fx; wasmgate/nginx: plain %.2fx, split %.2fx\n", np, ns, ns / np, p / np, s / ns }'
if [ -n "$perf_ok" ]; then
  awk -v p="${cpu[wg-plain]}" -v g="${cpu[wg-guarded]}" -v c="${cpu[wg-control]}" -v n="$ROUNDS" 'BEGIN {
    printf "gateway CPU per request: plain %.2f us, control %.2f us, retry + breaker %.2f us = +%.1f%% of their mean\n", p / n, c / n, g / n, (2 * g / (p + c) - 1) * 100 }'
fi
p99_report
