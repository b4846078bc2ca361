#!/usr/bin/env bash
# The result cache under load (issue 19): tools/list whose result is fresh for 60 s (ttlMs),
# 32 VUs in sessions, against the mock upstream directly, through Shadowcat with the cache,
# through Shadowcat without it (cache.enabled: false) and through nginx, interleaved over
# ROUNDS. Prints the median req/s and p95 of each target, the p95 each proxy adds to direct,
# and the ratios. Run loadtest/run.sh once first (it installs k6 and nginx).
#
# Usage: loadtest/cache.sh
# Env:   ROUNDS (3), DURATION (8s), MOCK_SERVICE_MS (2: the upstream's time per answer), VUS (32)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
K6=${K6:-$HOME/.cache/shadowcat/k6/bin/k6}
[[ -x "$K6" ]] || { echo "no k6 at $K6 (run loadtest/run.sh once, or set K6)"; exit 1; }
command -v nginx >/dev/null || { echo "no nginx (run loadtest/run.sh once)"; exit 1; }
OUT="$ROOT/loadtest/out/cache-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
(cd "$ROOT" && cargo build -q --release -p shadowcat -p shadowcat-loadtest --bin=shadowcat --bin=shadowcat-mock-upstream)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; return 1; }
MOCK=$(free_port); SC=$(free_port); NC=$(free_port); NG=$(free_port)

"$BIN/shadowcat-mock-upstream" "127.0.0.1:$MOCK" 2>"$OUT/mock.log" &
MOCK_PID=$!
printf 'sessions:\n  max_per_ip: 100000\n' >"$OUT/cache.yaml"
printf 'sessions:\n  max_per_ip: 100000\ncache:\n  enabled: false\n' >"$OUT/nocache.yaml"
RUST_LOG=warn "$BIN/shadowcat" reverse --config "$OUT/cache.yaml" --bind "127.0.0.1:$SC" --upstream "http://127.0.0.1:$MOCK/mcp" --admin off 2>"$OUT/cache.log" &
SC_PID=$!
RUST_LOG=warn "$BIN/shadowcat" reverse --config "$OUT/nocache.yaml" --bind "127.0.0.1:$NC" --upstream "http://127.0.0.1:$MOCK/mcp" --admin off 2>"$OUT/nocache.log" &
NC_PID=$!
cat >"$OUT/nginx.conf" <<NGINX
worker_processes 2;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  upstream mcp { server 127.0.0.1:$MOCK; keepalive 128; }
  server {
    listen 127.0.0.1:$NG;
    location /mcp {
      proxy_pass http://mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_cache off;
    }
  }
}
NGINX
nginx -c "$OUT/nginx.conf" -p "$OUT" &
NG_PID=$!
trap 'kill $MOCK_PID $SC_PID $NC_PID $NG_PID 2>/dev/null || true' EXIT
for p in "$MOCK" "$SC" "$NC" "$NG"; do wait_port "$p"; done

declare -A URL=([direct]="http://127.0.0.1:$MOCK/mcp" [cache]="http://127.0.0.1:$SC/mcp"
  [nocache]="http://127.0.0.1:$NC/mcp" [nginx]="http://127.0.0.1:$NG/mcp")
for round in $(seq "$ROUNDS"); do
  for target in direct cache nocache nginx; do
    TARGET=${URL[$target]} DURATION=$DURATION "$K6" run -q --no-color \
      --summary-export "$OUT/$target.$round.json" "$ROOT/loadtest/k6/tools_list.js" >"$OUT/$target.$round.log" 2>&1 || true
    echo "round $round  $target  done"
  done
done

python3 - "$OUT" "$ROUNDS" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
def med(target, pick):
    return statistics.median(pick(json.load(open(f"{out}/{target}.{r}.json"))["metrics"]) for r in range(1, rounds + 1))
rate = {t: med(t, lambda m: m["http_reqs"]["rate"]) for t in ("direct", "cache", "nocache", "nginx")}
p95 = {t: med(t, lambda m: m["http_req_duration"]["p(95)"]) for t in rate}
fails = {t: med(t, lambda m: m["checks"]["fails"]) for t in rate}
print(f"{'target':10} {'req/s':>10} {'p95 ms':>8} {'added p95 ms':>13} {'failed checks':>14}")
for t in rate:
    added = "" if t == "direct" else f"{p95[t] - p95['direct']:.2f}"
    print(f"{t:10} {rate[t]:10.0f} {p95[t]:8.2f} {added:>13} {fails[t]:14.0f}")
print(f"req/s: cache/nocache {rate['cache'] / rate['nocache']:.2f}, cache/nginx {rate['cache'] / rate['nginx']:.2f}, nocache/nginx {rate['nocache'] / rate['nginx']:.2f}")
print(f"p95: cache/nocache {p95['cache'] / p95['nocache']:.2f}, cache/nginx {p95['cache'] / p95['nginx']:.2f}")
PY
echo "raw: $OUT"
