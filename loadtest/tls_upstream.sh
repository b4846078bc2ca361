#!/usr/bin/env bash
# TLS to the upstream under load: Shadowcat with an https:// upstream (`tls: {ca_file}`) beside
# nginx with `proxy_pass https://` (proxy_ssl_verify on, the same CA, upstream keep-alive), both
# in front of the same upstream: the mock behind a TLS-terminating nginx (the "front", a leaf of
# a test CA made by tests/harness/make_certs.sh). direct = the generator straight to the front
# (HTTP/1.1 over keep-alive TLS, as nginx speaks upstream).
# Scenarios (k6 scripts of loadtest/k6; clients speak plain HTTP to both proxies):
#   json_rate  tools/call as JSON after 2 ms of service time, 300/s constant arrival (latency)
#   json_max   tools/call as JSON, 32 connections as fast as they go (throughput); run by oha
#              where there is one (OHA, PATH, ~/.cache/shadowcat/oha/bin), since k6 on one core
#              cannot saturate the other core's proxy; else by k6 (then read it as a floor)
#   sse_first  tools/call answered as SSE, its one event sent at once, 300/s (first-event latency)
# interleaved over ROUNDS rounds; the table (loadtest/report.py) gives medians, the p95 each
# proxy adds to direct and Shadowcat's ratios to nginx. The generator is pinned to one core,
# the proxies, the front and the mock to the other, each with one worker thread.
#
# Usage: loadtest/tls_upstream.sh   (run loadtest/run.sh once first: it installs k6 and nginx)
# Env:   ROUNDS (3)  DURATION (8s per run)  TARGETS ("direct shadowcat nginx")  OHA (path)
#        HTTP2 (unset: Shadowcat's default; or auto|always|never: its upstreams[].http2)
#        GEN_CPU (0)  PROXY_CPU (1)  K6 (path to k6)
#        BIN (a folder with release shadowcat and shadowcat-mock-upstream: skips the build)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
TARGETS=${TARGETS:-direct shadowcat nginx}
GEN_CPU=${GEN_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
SCENARIOS="json_rate json_max sse_first"
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "ROUNDS must be 1 to 99"; exit 1; }
[[ $DURATION =~ ^([1-9][0-9]?)s$ ]] || { echo "DURATION must be 1s to 99s"; exit 1; }
K6_LIMIT=$((${DURATION%s} + 60)) # a k6 run that outlives this is killed
[[ -z ${HTTP2:-} || $HTTP2 =~ ^(auto|always|never)$ ]] || { echo "HTTP2 must be auto, always or never"; exit 1; }
for t in $TARGETS; do [[ $t =~ ^(direct|shadowcat|nginx)$ ]] || { echo "unknown target $t"; exit 1; }; done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || { echo "no nginx (run loadtest/run.sh once, or apt-get install nginx)"; exit 1; }
K6=${K6:-$HOME/.cache/shadowcat/k6/bin/k6}
[[ -x $K6 ]] || { echo "no k6 at $K6 (run loadtest/run.sh once, or set K6)"; exit 1; }
command -v taskset >/dev/null || { echo "no taskset (util-linux)"; exit 1; }
(($(nproc) >= 2)) || { echo "needs 2 cores: the generator on one, the proxies on the other"; exit 1; }
OUT="$ROOT/loadtest/out/tls-upstream-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
chmod 755 "$OUT" # nginx started as root runs its workers as nobody
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if [[ -z "${BIN:-}" ]]; then
  (cd "$ROOT" && cargo build -q --release -p shadowcat -p shadowcat-loadtest --bin=shadowcat --bin=shadowcat-mock-upstream)
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
fi
"$ROOT/tests/harness/make_certs.sh" "$OUT/certs"
CA=$OUT/certs/ca.crt

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Up to 10 s; fails at once if the process is gone (PID as the second argument).
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    [[ -n ${2:-} ]] && ! kill -0 "$2" 2>/dev/null && return 1
    sleep 0.05
  done
  return 1
}
PIN=(taskset -c "$PROXY_CPU") # taskset execs its command: $! is the process itself
MOCK=$(free_port); FRONT_DIRECT=$(free_port); FRONT_SC=$(free_port); FRONT_NG=$(free_port)
SC=$(free_port); NG=$(free_port)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

TOKIO_WORKER_THREADS=1 "${PIN[@]}" "$BIN/shadowcat-mock-upstream" "127.0.0.1:$MOCK" 2>"$OUT/mock.log" &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
# nginx's own prefix, pid, logs and temp paths under $OUT (no root-owned default path is used).
nginx_head() { # NAME
  cat <<HEAD
worker_processes 1;
worker_rlimit_nofile 65536;
daemon off;
pid $OUT/$1.pid;
error_log $OUT/$1-error.log warn;
events { worker_connections 30000; }
http {
  client_body_temp_path $OUT/$1-body;
  proxy_temp_path $OUT/$1-proxy;
  fastcgi_temp_path $OUT/$1-fastcgi;
  uwsgi_temp_path $OUT/$1-uwsgi;
  scgi_temp_path $OUT/$1-scgi;
  access_log off;
HEAD
}
# The front: TLS (h2 and http/1.1 by ALPN) to the mock, one server block per target so its
# access log tells which protocol each client used.
{
  nginx_head front
  echo "  log_format proto '\$server_protocol \$ssl_protocol';"
  echo "  upstream mock { server 127.0.0.1:$MOCK; keepalive 128; }"
  for pair in "direct:$FRONT_DIRECT" "shadowcat:$FRONT_SC" "nginx:$FRONT_NG"; do
    cat <<BLOCK
  server {
    listen 127.0.0.1:${pair#*:} ssl http2;
    ssl_certificate $OUT/certs/server.crt;
    ssl_certificate_key $OUT/certs/server.key;
    access_log $OUT/front-${pair%%:*}.log proto buffer=64k flush=1s;
    location /mcp {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
    }
  }
BLOCK
  done
  echo "}"
} >"$OUT/front.conf"
"${PIN[@]}" "$NGINX" -e "$OUT/front-error.log" -p "$OUT" -c "$OUT/front.conf" &
FRONT_PID=$!
PIDS+=("$FRONT_PID")
# The nginx under test: proxy_pass https:// to the front, verifying its certificate.
{
  nginx_head nginx
  cat <<CONF
  upstream tls_upstream { server 127.0.0.1:$FRONT_NG; keepalive 128; }
  server {
    listen 127.0.0.1:$NG;
    location /mcp {
      proxy_pass https://tls_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_ssl_trusted_certificate $CA;
      proxy_ssl_verify on;
      proxy_ssl_server_name on;
      proxy_ssl_name localhost;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
    }
  }
}
CONF
} >"$OUT/nginx.conf"
"${PIN[@]}" "$NGINX" -e "$OUT/nginx-error.log" -p "$OUT" -c "$OUT/nginx.conf" &
NG_PID=$!
PIDS+=("$NG_PID")
for p in "$MOCK:$MOCK_PID" "$FRONT_DIRECT:$FRONT_PID" "$FRONT_SC:$FRONT_PID" "$FRONT_NG:$FRONT_PID" "$NG:$NG_PID"; do
  wait_port "${p%%:*}" "${p#*:}" || { echo "port ${p%%:*} never opened"; tail -5 "$OUT"/*-error.log "$OUT/mock.log"; exit 1; }
done
SC_PID=
if [[ " $TARGETS " == *" shadowcat "* ]]; then
  # Every k6 client connects from 127.0.0.1: lift the per-address session cap (as run.sh does).
  {
    printf 'listen: 127.0.0.1:%s\nadmin: null\nthreads: 1\nsessions:\n  max_per_ip: 100000\n' "$SC"
    printf 'upstreams:\n  - name: tls\n    url: https://127.0.0.1:%s/mcp\n' "$FRONT_SC"
    [[ -n ${HTTP2:-} ]] && printf '    http2: %s\n' "$HTTP2"
    printf '    tls:\n      ca_file: %s\n' "$CA"
  } >"$OUT/shadowcat.yaml"
  RUST_LOG=warn "${PIN[@]}" "$BIN/shadowcat" reverse --config "$OUT/shadowcat.yaml" 2>"$OUT/shadowcat.log" &
  SC_PID=$!
  PIDS+=("$SC_PID")
  if ! wait_port "$SC" "$SC_PID"; then
    rc=0; wait "$SC_PID" 2>/dev/null || rc=$?
    echo "Shadowcat did not start with an https:// upstream (exit $rc): this build refuses TLS upstreams,"
    echo "or the config below is wrong. Run the nginx and direct side alone with TARGETS=\"direct nginx\"."
    sed 's/^/    /' "$OUT/shadowcat.yaml" "$OUT/shadowcat.log"
    exit 2
  fi
fi
# One request through each target before the load: a proxy that cannot reach the upstream
# (certificate refused, h2 not spoken) fails here, not as a table of errors.
declare -A URL=([direct]="https://127.0.0.1:$FRONT_DIRECT/mcp" [shadowcat]="http://127.0.0.1:$SC/mcp" [nginx]="http://127.0.0.1:$NG/mcp")
for t in $TARGETS; do
  code=$(curl --http1.1 -sS -o "$OUT/smoke.$t" -w '%{http_code}' --max-time 10 --cacert "$CA" -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}' \
    "${URL[$t]}" || true)
  [[ $code == 200 ]] || { echo "$t: initialize got HTTP $code, not 200"; cat "$OUT/smoke.$t"; tail -5 "$OUT/$t.log" "$OUT"/*-error.log 2>/dev/null; exit 1; }
done
echo "mock :$MOCK, TLS front :$FRONT_DIRECT/:$FRONT_SC/:$FRONT_NG, shadowcat :$SC, nginx :$NG (cpu $PROXY_CPU; k6 on cpu $GEN_CPU)"

pids() { case $1 in shadowcat) echo "$SC_PID" ;; nginx) echo "$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')" ;; *) echo "" ;; esac; }
cpu_ticks() { local t=0; for p in $(pids "$1"); do read -r -a f <"/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo $t; }
hwm_kb() { local t=0; for p in $(pids "$1"); do t=$((t + $(awk '/^VmHWM/ {print $2}' "/proc/$p/status"))); done; echo $t; }
TICK=$(getconf CLK_TCK)
# direct is https:// with the test CA's leaf: k6 skips verification (the proxies verify theirs),
# and speaks HTTP/1.1 to it (GODEBUG), as nginx does upstream: keep-alive TLS on the generator.
export K6_INSECURE_SKIP_TLS_VERIFY=true GOMAXPROCS=1
# json_max with oha where there is one: k6 on one core cannot saturate the other core's proxy.
# oha runs in one session per target (opened here with curl); its summary is rewritten in
# k6's --summary-export shape, so loadtest/report.py reads both alike.
OHA=${OHA:-$(command -v oha || echo "$HOME/.cache/shadowcat/oha/bin/oha")}
[[ -x $OHA ]] || OHA=
HDRS=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2025-11-25')
session() { # URL: an Mcp-Session-Id for URL (empty if none was issued)
  curl --http1.1 -sS -D - -o /dev/null --max-time 10 --cacert "$CA" "${HDRS[@]}" \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}' "$1" | awk -F': *' 'tolower($1) == "mcp-session-id" {print $2}' | tr -d '\r'
}
oha_json_max() { # TARGET ROUND
  local sid args=()
  sid=$(session "${URL[$1]}")
  [[ -n $sid ]] && args+=(-H "mcp-session-id: $sid")
  timeout -k 5 "$K6_LIMIT" taskset -c "$GEN_CPU" "$OHA" --no-tui --output-format json -z "$DURATION" -c 32 --insecure \
    -m POST "${HDRS[@]}" "${args[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}' \
    "${URL[$1]}" >"$OUT/json_max.$1.$2.oha" 2>"$OUT/json_max.$1.$2.log" || true
  python3 - "$OUT/json_max.$1.$2.oha" "$OUT/json_max.$1.$2.json" <<'PY'
import json, sys
o = json.load(open(sys.argv[1]))
s, p = o["summary"], o["latencyPercentiles"]
codes = o.get("statusCodeDistribution", {})
# Requests cut by -z's deadline are not failures.
errors = sum(n for e, n in o.get("errorDistribution", {}).items() if "deadline" not in e)
total = sum(codes.values()) + errors
ms = lambda v: (v or 0) * 1000
json.dump({"generator": "oha", "metrics": {
    "http_req_duration": {"p(50)": ms(p["p50"]), "p(95)": ms(p["p95"]), "p(99)": ms(p["p99"])},
    "http_reqs": {"rate": s["requestsPerSec"], "count": total},
    "checks": {"fails": total - codes.get("200", 0)}}}, open(sys.argv[2], "w"))
PY
}
for round in $(seq "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    for target in $TARGETS; do
      before=$(cpu_ticks "$target")
      if [[ $scenario == json_max && -n $OHA ]]; then
        oha_json_max "$target" "$round"
      else
        h2=; [[ $target == direct ]] && h2=http2client=0
        GODEBUG=$h2 timeout -k 5 "$K6_LIMIT" taskset -c "$GEN_CPU" "$K6" run --quiet --no-color -e TARGET="${URL[$target]}" \
          -e DURATION="$DURATION" --summary-export "$OUT/$scenario.$target.$round.json" \
          "$ROOT/loadtest/k6/$scenario.js" >"$OUT/$scenario.$target.$round.log" 2>&1 || true
      fi
      after=$(cpu_ticks "$target")
      echo "{\"kind\":\"cpu\",\"scenario\":\"$scenario\",\"target\":\"$target\",\"round\":$round,\"cpu_s\":$(python3 -c "print(($after-$before)/$TICK)"),\"hwm_kb\":$(hwm_kb "$target")}" >>"$OUT/resources.jsonl"
      [[ -s $OUT/$scenario.$target.$round.json ]] || { echo "no summary for $scenario/$target (log: $OUT/$scenario.$target.$round.log)"; exit 1; }
      echo "round $round  $scenario  $target  done"
    done
  done
done
echo "json_max generator: ${OHA:-k6 (no oha: set OHA, or cargo install oha --root ~/.cache/shadowcat/oha)}"

sleep 1.5 # the front's access logs flush every second
echo "Upstream protocol per target (the front's access log: requests by HTTP version and TLS version):"
for t in $TARGETS; do echo "  $t: $(sort "$OUT/front-$t.log" | uniq -c | sed 's/^ *//' | paste -sd ';')"; done
{
  SCENARIOS=$SCENARIOS python3 "$ROOT/loadtest/report.py" "$OUT"
  # Throughput against direct too (report.py gives Shadowcat/nginx only).
  python3 - "$OUT" "$SCENARIOS" <<'PY'
import glob, json, os, statistics, sys
out, scenarios = sys.argv[1], sys.argv[2].split()
def rps(sc, t):
    xs = [json.load(open(p))["metrics"]["http_reqs"]["rate"] for p in glob.glob(os.path.join(out, f"{sc}.{t}.*.json"))]
    return statistics.median(xs) if xs else 0
print("\n**Throughput vs direct** (median req/s of each proxy / direct's):\n")
print("| scenario | shadowcat / direct | nginx / direct | shadowcat / nginx |")
print("|---|---|---|---|")
r = lambda a, b: f"{a / b:.2f}" if a and b else "n/a"
for sc in scenarios:
    d, s, n = rps(sc, "direct"), rps(sc, "shadowcat"), rps(sc, "nginx")
    print(f"| {sc} | {r(s, d)} | {r(n, d)} | {r(s, n)} |")
PY
} | tee "$OUT/report.md"
echo "raw results in $OUT"
