#!/usr/bin/env bash
# nginx vs wasmgate, side by side in one run: both proxies get one worker, sit in front of the same
# upstream (an nginx serving a 1 KiB body), and are driven by wrk with 64 keep-alive connections.
# Prints rps and p99 of each and the ratio. Not a test: numbers depend on the machine.
#
#   bench/run.sh            # 10 s per run, 2 rounds
#   DURATION=20 ROUNDS=3 bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-64}
for tool in nginx wrk; do
  command -v "$tool" >/dev/null || { echo "bench needs $tool: apt-get install -y nginx wrk" >&2; exit 1; }
done
cargo build --release -q -p wasmgate
GW=target/release/wasmgate

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); WG=$(free_port); ADMIN=$(free_port)
body=$(head -c 1024 /dev/zero | tr '\0' 'x')

nginx_conf() { # name, body of the server block
  mkdir -p "$work/$1"
  cat > "$work/$1/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/$1/nginx.pid;
error_log $work/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  $2
}
CONF
  nginx -p "$work/$1" -c "$work/$1/nginx.conf" &
  pids+=($!)
}

nginx_conf upstream "server { listen 127.0.0.1:$UP; keepalive_requests 1000000; location / { default_type text/plain; return 200 '$body'; } }"
nginx_conf proxy "upstream up { server 127.0.0.1:$UP; keepalive 128; }
  server { listen 127.0.0.1:$NGX; keepalive_requests 1000000;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"

cat > "$work/gateway.toml" <<CONF
[server]
workers = 1
watch_config = false
[[listeners]]
address = "127.0.0.1:$WG"
[admin]
address = "127.0.0.1:$ADMIN"
[log]
level = "warn"
access = false
[upstreams.up]
targets = ["127.0.0.1:$UP"]
[[routes]]
path_prefix = "/"
upstream = "up"
CONF
"$GW" run -c "$work/gateway.toml" > "$work/gateway.log" 2>&1 &
pids+=($!)

for port in $UP $NGX $WG; do
  for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done
done

# wrk prints "Requests/sec: N" and, with --latency, a "99% Xms" line.
measure() { # url -> "rps p99_ms"
  wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$1" > "$work/wrk.out"
  local rps p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
  p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000} print v}' "$work/wrk.out")
  echo "$rps $p99"
}

printf '%-10s %-6s %12s %10s\n' target round rps p99_ms
best_n=0; best_w=0; p99_n=0; p99_w=0
for r in $(seq "$ROUNDS"); do
  read -r d dp < <(measure "http://127.0.0.1:$UP/")
  printf '%-10s %-6s %12.0f %10.2f\n' direct "$r" "$d" "$dp"
  read -r n np < <(measure "http://127.0.0.1:$NGX/")
  printf '%-10s %-6s %12.0f %10.2f\n' nginx "$r" "$n" "$np"
  read -r w wp < <(measure "http://127.0.0.1:$WG/")
  printf '%-10s %-6s %12.0f %10.2f\n' wasmgate "$r" "$w" "$wp"
  if awk "BEGIN{exit !($n > $best_n)}"; then best_n=$n; p99_n=$np; fi
  if awk "BEGIN{exit !($w > $best_w)}"; then best_w=$w; p99_w=$wp; fi
done
echo
awk -v n="$best_n" -v w="$best_w" -v pn="$p99_n" -v pw="$p99_w" 'BEGIN {
  printf "best of rounds: nginx %.0f rps (p99 %.2f ms), wasmgate %.0f rps (p99 %.2f ms)\n", n, pn, w, pw
  printf "ratio wasmgate/nginx: %.2fx rps\n", w / n
}'
