#!/usr/bin/env bash
# Saturation test: every proxy at its maximum throughput, measured by a generator that is not
# the bottleneck (loadtest/saturate.rs; k6 tops out near 12k req/s on the 2-core machine).
#
# The generator runs on core GEN_CPU (0), every proxy and the mock upstream on core
# PROXY_CPU (1), one worker thread each; targets are interleaved over ROUNDS rounds:
#   direct      the mock upstream alone
#   shadowcat   SHADOWCAT_BIN (default: built from this tree), `threads: 1`, admin off
#   before      SHADOWCAT_BEFORE_BIN, the same config (only when set)
#   bare        shadowcat-bare-pingora, 1 thread (Pingora's proxy path, no logic)
#   lean        shadowcat-lean-probe, 1 thread (JSON only)
#   nginx       worker_processes 1, keep-alive upstream pool, buffering off
#   sealed, store   (REPLICAS=1) Shadowcat with sealed session ids and a per-session rate limit
#               that never refuses, state in memory (sealed) or in a redis-server started here
#               on the proxy core (store; its CPU counted with the proxy's): what the shared
#               store costs per request
#   otel, otel-low  (OTEL=1) Shadowcat with `telemetry:` at sample_ratio 1.0 and 0.01,
#               exporting OTLP/HTTP to shadowcat-otlp-sink (accepts everything; on GEN_CPU)
# Scenarios: json_max (tools/call, JSON answer) and sse_first (tools/call answered as an SSE
# stream of one event, the result; latency = time to that event). Then, with TLS=1, both
# again with the mock behind TLS (rustls, certificate made here with openssl) for the
# proxies that can reach an https upstream: shadowcat (`upstreams: [{url: https://..., tls:
# {ca_file}}]`) and nginx (`proxy_ssl_verify on`). With STREAMS=N (0: off), the idle-stream
# step: N GET streams held open (shadowcat-loadgen), added delivery delay and memory per stream.
# With RECORD=1, one more target: `recording`, Shadowcat as `shadowcat` with `recording:` on
# (tapes in the run's output folder, its writer thread on the proxy's core, so its CPU
# counts); its tape lines written and dropped are printed at the end.
#
# Usage: loadtest/saturate.sh
# Env:   ROUNDS (3)  DURATION (8, s)  WARMUP (2, s)  CONNECTIONS (64)  TLS (1)  STREAMS (0)  RECORD (0)
#        STREAM_SECONDS (12)  SHADOWCAT_BIN  SHADOWCAT_BEFORE_BIN  GEN_CPU (0)  PROXY_CPU (1)
#        TARGETS (all of the above that exist; e.g. "direct shadowcat nginx")
#        BUILD (1; 0: use the binaries already in CARGO_TARGET_DIR or target/)
#        NICE (-19: the niceness of every measured process, generator included)
#        REPLICAS (0; 1: the sealed and store targets, needs redis-server)
#        OTEL (0; 1: the otel and otel-low targets)
# Needs: cargo, python3, nginx, openssl, taskset.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-64}
TLS=${TLS:-1}
STREAMS=${STREAMS:-0}
STREAM_SECONDS=${STREAM_SECONDS:-12}
STREAM_WARMUP=4
GEN_CPU=${GEN_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
# The measured processes run at this niceness: on a shared machine, other work (builds) then
# takes little of the two cores (as root; otherwise nice warns and keeps the default).
NICE=${NICE:--19}
for tool in cargo python3 nginx openssl taskset; do
  command -v "$tool" >/dev/null || { echo "saturate.sh: $tool is missing"; exit 1; }
done
OUT="$ROOT/loadtest/out/saturate-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
[[ ${BUILD:-1} == 0 ]] || (cd "$ROOT" && cargo build -q --release -p shadowcat-loadtest --bins)
if [[ -z "${SHADOWCAT_BIN:-}" ]]; then
  [[ ${BUILD:-1} == 0 ]] || (cd "$ROOT" && cargo build -q --release -p shadowcat --bin shadowcat)
  SHADOWCAT_BIN="$BIN/shadowcat"
fi
[[ -x $SHADOWCAT_BIN ]] || { echo "SHADOWCAT_BIN=$SHADOWCAT_BIN is not executable"; exit 1; }
BEFORE_BIN=${SHADOWCAT_BEFORE_BIN:-}
[[ -z $BEFORE_BIN || -x $BEFORE_BIN ]] || { echo "SHADOWCAT_BEFORE_BIN=$BEFORE_BIN is not executable"; exit 1; }

# Every process started here, killed on any exit.
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits up to 10 s for NAME (pid PID) to listen on PORT; fails with its log if it died or never did.
wait_up() {
  local name=$1 pid=$2 port=$3 log=$4
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { echo "saturate.sh: $name exited at start; $log:"; tail -20 "$log"; exit 1; }
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "saturate.sh: $name never listened on 127.0.0.1:$port; $log:"; tail -20 "$log"; exit 1
}
# Starts a process pinned to the proxy core: on_core NAME PORT -- CMD...; sets TPID[NAME].
declare -A TPID
on_core() {
  local name=$1 port=$2; shift 3
  taskset -c "$PROXY_CPU" nice -n "$NICE" "$@" >"$OUT/$name.log" 2>&1 &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  TPID[$name]=$LAST_PID
  wait_up "$name" "$LAST_PID" "$port" "$OUT/$name.log"
}

# A CA and a leaf for 127.0.0.1 (IP and DNS names: rustls checks the IP, nginx the name).
if [[ $TLS == 1 ]]; then
  (
    cd "$OUT"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
      -subj /CN=saturate-ca -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -subj /CN=127.0.0.1 -keyout leaf.key -out leaf.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -extfile leaf.ext -out leaf.pem 2>/dev/null
  ) || { echo "saturate.sh: openssl could not make the test certificates"; exit 1; }
fi

declare -A URL
MOCK=$(free_port)
on_core mock "$MOCK" -- "$BIN/shadowcat-mock-upstream" "127.0.0.1:$MOCK" --threads 1
URL[direct]="http://127.0.0.1:$MOCK/mcp"
if [[ $TLS == 1 ]]; then
  MOCK_TLS=$(free_port)
  on_core mock-tls "$MOCK_TLS" -- "$BIN/shadowcat-mock-upstream" "127.0.0.1:$MOCK_TLS" --threads 1 --tls "$OUT/leaf.pem" "$OUT/leaf.key"
fi

# Shadowcat as run.sh runs it (warn-level log: the access log is not measured; the session
# cap per address off: every client is 127.0.0.1), on one worker thread.
shadowcat() { # NAME BIN CONFIG_BODY [--upstream URL]
  local name=$1 bin=$2 body=$3; shift 3
  local port; port=$(free_port)
  printf 'threads: 1\nsessions:\n  max_per_ip: 100000\n%s' "$body" >"$OUT/$name.yaml"
  on_core "$name" "$port" -- env RUST_LOG=warn "$bin" reverse --config "$OUT/$name.yaml" --bind "127.0.0.1:$port" --admin off "$@"
  URL[$name]="http://127.0.0.1:$port/mcp"
}
shadowcat shadowcat "$SHADOWCAT_BIN" "" --upstream "http://127.0.0.1:$MOCK/mcp"
[[ -n $BEFORE_BIN ]] && shadowcat before "$BEFORE_BIN" "" --upstream "http://127.0.0.1:$MOCK/mcp"
if [[ ${RECORD:-0} == 1 ]]; then
  # The same, recording every request; its own admin port, to read the tape counters.
  REC_ADMIN=$(free_port)
  REC_PORT=$(free_port)
  printf 'threads: 1
sessions:
  max_per_ip: 100000
admin: 127.0.0.1:%s
recording:
  dir: %s/tapes
  max_total_bytes: 512MiB
' \
    "$REC_ADMIN" "$OUT" >"$OUT/recording.yaml"
  on_core recording "$REC_PORT" -- env RUST_LOG=warn "$SHADOWCAT_BIN" reverse --config "$OUT/recording.yaml" \
    --bind "127.0.0.1:$REC_PORT" --upstream "http://127.0.0.1:$MOCK/mcp"
  URL[recording]="http://127.0.0.1:$REC_PORT/mcp"
fi
if [[ ${OTEL:-0} == 1 ]]; then
  # The collector shares the generator's core: its work is not the proxy's.
  SINK=$(free_port)
  taskset -c "$GEN_CPU" "$BIN/shadowcat-otlp-sink" "127.0.0.1:$SINK" >"$OUT/otlp-sink.log" 2>&1 &
  PIDS+=("$!")
  wait_up otlp-sink "$!" "$SINK" "$OUT/otlp-sink.log"
  for variant in "otel 1.0" "otel-low 0.01"; do
    read -r name ratio <<<"$variant"
    shadowcat "$name" "$SHADOWCAT_BIN" "telemetry:
  otlp: {endpoint: \"http://127.0.0.1:$SINK\", protocol: http}
  sample_ratio: $ratio
" --upstream "http://127.0.0.1:$MOCK/mcp"
  done
fi
if [[ $TLS == 1 ]]; then
  shadowcat shadowcat-tls "$SHADOWCAT_BIN" "upstreams:
  - name: up
    url: https://127.0.0.1:$MOCK_TLS/mcp
    tls:
      ca_file: $OUT/ca.pem
"
fi
if [[ ${REPLICAS:-0} == 1 ]]; then
  command -v redis-server >/dev/null || { echo "saturate.sh: REPLICAS=1 needs redis-server"; exit 1; }
  REDIS=$(free_port)
  on_core redis "$REDIS" -- redis-server --bind 127.0.0.1 --port "$REDIS" --save "" --appendonly no --dir "$OUT"
  replicas_body() { # STORE_YAML
    printf '  max_age: 24h\n  keys:\n    - {id: k1, secret: 0123456789abcdef0123456789abcdef-saturate}\nrate_limits:\n  per_session: {rate: 1000000, per: 1s, burst: 1000000}\n%s' "$1"
  }
  shadowcat sealed "$SHADOWCAT_BIN" "$(replicas_body "")" --upstream "http://127.0.0.1:$MOCK/mcp"
  shadowcat store "$SHADOWCAT_BIN" "$(replicas_body "store: {kind: redis, url: 'redis://127.0.0.1:$REDIS'}")" --upstream "http://127.0.0.1:$MOCK/mcp"
fi
for ref in bare lean; do
  port=$(free_port)
  [[ $ref == bare ]] && exe=shadowcat-bare-pingora || exe=shadowcat-lean-probe
  on_core "$ref" "$port" -- "$BIN/$exe" "127.0.0.1:$port" "127.0.0.1:$MOCK" 1
  URL[$ref]="http://127.0.0.1:$port/mcp"
done

NG=$(free_port)
NG_TLS=$(free_port)
tls_server=""
if [[ $TLS == 1 ]]; then
  tls_server="
  upstream mcp_tls { server 127.0.0.1:$MOCK_TLS; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NG_TLS;
    location /mcp {
      proxy_pass https://mcp_tls;
      proxy_ssl_trusted_certificate $OUT/ca.pem;
      proxy_ssl_verify on;
      proxy_ssl_name 127.0.0.1;
      proxy_ssl_session_reuse on;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 1h;
    }
  }"
fi
cat >"$OUT/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 65536;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
daemon off;
events { worker_connections 30000; }
http {
  access_log off;
  # Keep-alive connections are never closed after N requests (nginx's default closes them
  # after 1000, both sides): like the other proxies, and no reconnects measured.
  keepalive_requests 1000000;
  upstream mcp { server 127.0.0.1:$MOCK; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$NG;
    location /mcp {
      proxy_pass http://mcp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
    }
  }$tls_server
}
NGINX
on_core nginx "$NG" -- nginx -c "$OUT/nginx.conf" -p "$OUT"
NG_PID=$LAST_PID
URL[nginx]="http://127.0.0.1:$NG/mcp"
if [[ $TLS == 1 ]]; then
  wait_up nginx-tls "$NG_PID" "$NG_TLS" "$OUT/nginx-error.log"
  URL[nginx-tls]="http://127.0.0.1:$NG_TLS/mcp"
fi

# Which targets run a scenario (TARGETS narrows them).
wanted() { [[ -z ${TARGETS:-} || " $TARGETS " == *" ${1%-tls} "* ]]; }
scenario_targets() {
  local t all
  case $1 in
    json_max) all="direct bare lean before shadowcat sealed store recording otel otel-low nginx" ;;
    sse_first) all="direct bare before shadowcat sealed store recording otel otel-low nginx" ;;
    *_tls) all="shadowcat-tls nginx-tls" ;;
  esac
  for t in $all; do [[ -n ${URL[$t]:-} ]] && wanted "$t" && echo "$t"; done
}
scenario_headers() {
  case $1 in
    json_max*) echo "x-mock-mode: json" ;;
    sse_first*) echo "x-mock-mode: sse|x-mock-events: 0" ;; # one event (the result), then the end
  esac
}
SCENARIOS="json_max sse_first"
[[ $TLS == 1 ]] && SCENARIOS+=" json_max_tls sse_first_tls"

alive() { kill -0 "$1" 2>/dev/null; }
# The processes whose CPU time counts for a target: the proxy (nginx: master and worker), the
# mock for direct.
target_pids() {
  case $1 in
    direct) echo "${TPID[mock]}" ;;
    mocks) echo "$MOCKS" ;;
    nginx | nginx-tls) echo "$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')" ;;
    store) echo "${TPID[store]} ${TPID[redis]}" ;;
    *) echo "${TPID[$1]}" ;;
  esac
}
cpu_ticks() { local t=0 p f; for p in $(target_pids "$1"); do read -r -a f <"/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo $t; }
TICK=$(getconf CLK_TCK)
# Busy ticks of one core (all processes), to see how much of the proxy core went to others.
core_busy() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4}' /proc/stat; }
MOCKS="${TPID[mock]} ${TPID[mock-tls]:-}"
echo "load on start: $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT"
for round in $(seq "$ROUNDS"); do
  for scenario in $SCENARIOS; do
    IFS='|' read -r -a hs <<<"$(scenario_headers "$scenario")"
    hargs=(); for h in "${hs[@]}"; do hargs+=(--header "$h"); done
    for target in $(scenario_targets "$scenario"); do
      for p in "${PIDS[@]}"; do alive "$p" || { echo "saturate.sh: process $p died (logs in $OUT)"; exit 1; }; done
      before_ticks=$(cpu_ticks "$target"); before_mock=$(cpu_ticks mocks); before_core=$(core_busy "$PROXY_CPU")
      line=$(taskset -c "$GEN_CPU" nice -n "$NICE" "$BIN/shadowcat-saturate" --url "${URL[$target]}" --target "$target" \
        --connections "$CONNECTIONS" --duration-s "$DURATION" --warmup-s "$WARMUP" "${hargs[@]}" 2>>"$OUT/saturate.err") || true
      ticks=$(($(cpu_ticks "$target") - before_ticks))
      mock_ticks=$(($(cpu_ticks mocks) - before_mock))
      [[ $target == direct ]] && mock_ticks=0
      # Share of the proxy core's time used by processes other than the proxy and the mock.
      foreign=$(python3 -c "print(round(max(0, $(core_busy "$PROXY_CPU") - $before_core - $ticks - $mock_ticks) / ($TICK * ($WARMUP + $DURATION)), 3))")
      cpu_s=$(python3 -c "print($ticks / $TICK)")
      [[ -n $line ]] || line="{\"target\":\"$target\",\"rps\":0,\"failed\":true}"
      echo "{\"scenario\":\"$scenario\",\"round\":$round,\"cpu_s\":$cpu_s,\"foreign\":$foreign,\"result\":$line}" >>"$OUT/results.jsonl"
      printf 'round %s  %-14s %-14s %s  others on proxy core %s\n' "$round" "$scenario" "$target" "$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r.get("rps"), "req/s  p99", r.get("p99_ms"), "ms  errors", r.get("errors"), " non-2xx", r.get("non_2xx"))' "$line")" "$foreign"
    done
  done
done

# The idle-stream step: N open streams, one event per stream per second.
rss_kb() { local t=0 p; for p in $1; do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
if ((STREAMS > 0)); then
  # The processes whose memory counts (the mock is shared and not counted).
  declare -A SPID=([direct]="" [nginx]="$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')")
  for t in bare before shadowcat; do SPID[$t]=${TPID[$t]:-}; done
  for target in direct bare before shadowcat nginx; do
    [[ -n ${URL[$target]:-} ]] && wanted "$target" || continue
    idle=$(rss_kb "${SPID[$target]}")
    taskset -c "$GEN_CPU" nice -n "$NICE" "$BIN/shadowcat-loadgen" --url "${URL[$target]}" --streams "$STREAMS" --seconds "$STREAM_SECONDS" \
      --warmup-s "$STREAM_WARMUP" --spacing-ms 1000 >"$OUT/streams.$target.json" &
    LG=$!
    PIDS+=("$LG")
    sleep $(((STREAM_WARMUP + STREAM_SECONDS) / 2))
    busy=$(rss_kb "${SPID[$target]}")
    wait "$LG" || true
    echo "{\"scenario\":\"streams\",\"target\":\"$target\",\"streams\":$STREAMS,\"idle_kb\":$idle,\"busy_kb\":$busy,\"result\":$(cat "$OUT/streams.$target.json" || echo null)}" >>"$OUT/results.jsonl"
    echo "streams $STREAMS  $target  $(cat "$OUT/streams.$target.json")"
    sleep 1
  done
fi

python3 - "$OUT/results.jsonl" <<'PY' | tee "$OUT/report.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
runs = [r for r in rows if r["scenario"] != "streams"]
streams = [r for r in rows if r["scenario"] == "streams"]
med = lambda xs: statistics.median(xs) if xs else None
def agg(scenario, target):
    rs = [r["result"] for r in runs if r["scenario"] == scenario and r["result"]["target"] == target]
    if not rs:
        return None
    m = {k: med([r.get(k) or 0 for r in rs]) for k in ("rps", "p50_ms", "p95_ms", "p99_ms")}
    m["errors"] = sum(r.get("errors", 0) for r in rs)
    m["non_2xx"] = sum(r.get("non_2xx", 0) for r in rs)
    m["bad"] = sum(1 for r in rs if r.get("failed") or r.get("timed_out") or r.get("sse_without_event"))
    m["rounds"] = len(rs)
    cpu = [r["cpu_s"] * 1000 / r["result"]["all_requests"] for r in runs
           if r["scenario"] == scenario and r["result"]["target"] == target and r["result"].get("all_requests")]
    m["cpu"] = med(cpu)
    m["foreign"] = med([r.get("foreign", 0) for r in runs if r["scenario"] == scenario and r["result"]["target"] == target])
    return m
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "—"
order = ["direct", "lean", "bare", "before", "shadowcat", "sealed", "store", "recording", "otel", "otel-low", "nginx", "shadowcat-tls", "nginx-tls"]
scenarios = list(dict.fromkeys(r["scenario"] for r in runs))
print("| scenario | target | req/s | p50 ms | p95 ms | p99 ms | added p95 vs direct | CPU s per 1k req | others on proxy core | errors / non-2xx |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in scenarios:
    d = agg(s.removesuffix("_tls"), "direct")
    for t in order:
        m = agg(s, t)
        if not m:
            continue
        added = f"{m['p95_ms'] - d['p95_ms']:+.2f}" if d and t != "direct" and not s.endswith("_tls") else "—"
        flag = f" ({m['bad']} bad runs)" if m["bad"] else ""
        cpu = "—" if m["cpu"] is None else f"{m['cpu']:.3f}"
        print(f"| {s} | {t} | {m['rps']:,.0f} | {m['p50_ms']:.2f} | {m['p95_ms']:.2f} | {m['p99_ms']:.2f} | {added} | {cpu} | {m['foreign']:.0%} | {m['errors']} / {m['non_2xx']}{flag} |")
print()
# Throughput ratios (req/s), then CPU per request ratios (the steadier number on a shared
# machine: above 1, Shadowcat spends more per request).
print("| scenario | req/s: Shadowcat ÷ bare | ÷ nginx | ÷ before | ÷ lean | CPU per req: Shadowcat ÷ bare | ÷ nginx | ÷ before | ÷ lean |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for s in scenarios:
    tls = s.endswith("_tls")
    sc = "shadowcat-tls" if tls else "shadowcat"
    g = lambda t, k: (agg(s, t) or {}).get(k)
    refs = ["bare", "nginx-tls" if tls else "nginx", "before", "lean"]
    rps = " | ".join(ratio(g(sc, "rps"), g(t, "rps")) for t in refs)
    cpu = " | ".join(ratio(g(sc, "cpu"), g(t, "cpu")) for t in refs)
    print(f"| {s} | {rps} | {cpu} |")
if any(r["result"]["target"] == "store" for r in runs):
    print()
    print("| scenario | req/s: store ÷ sealed | CPU per req: store (with redis-server) ÷ sealed | added p95: store − sealed ms | sealed ÷ shadowcat req/s |")
    print("|---|---:|---:|---:|---:|")
    for s in scenarios:
        g = lambda t, k: (agg(s, t) or {}).get(k)
        if g("store", "rps") is None:
            continue
        dp95 = g("store", "p95_ms") - g("sealed", "p95_ms")
        print(f"| {s} | {ratio(g('store', 'rps'), g('sealed', 'rps'))} | {ratio(g('store', 'cpu'), g('sealed', 'cpu'))} | {dp95:+.2f} | {ratio(g('sealed', 'rps'), g('shadowcat', 'rps'))} |")
if any(agg(s, "recording") for s in scenarios):
    # Recording on against off (the `shadowcat` target), the same binary in the same run.
    print()
    print("| scenario | recording on ÷ off: req/s | p95 added ms | CPU per req |")
    print("|---|---:|---:|---:|")
    for s in scenarios:
        on, off = agg(s, "recording"), agg(s, "shadowcat")
        if on and off:
            print(f"| {s} | {ratio(on['rps'], off['rps'])} | {on['p95_ms'] - off['p95_ms']:+.2f} | {ratio(on['cpu'], off['cpu'])} |")
if any(agg(s, "otel") for s in scenarios):
    # Tracing beside the same binary without it (OTEL=1): sample ratio 1.0 and 0.01.
    print()
    print("| scenario | req/s: otel 1.0 ÷ off | otel 0.01 ÷ off | CPU per req: otel 1.0 ÷ off | otel 0.01 ÷ off | added p95 ms: 1.0 | 0.01 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in scenarios:
        g = lambda t, k: (agg(s, t) or {}).get(k)
        p95 = lambda t: f"{g(t, 'p95_ms') - g('shadowcat', 'p95_ms'):+.2f}" if g(t, "p95_ms") is not None and g("shadowcat", "p95_ms") is not None else "—"
        print(f"| {s} | {ratio(g('otel', 'rps'), g('shadowcat', 'rps'))} | {ratio(g('otel-low', 'rps'), g('shadowcat', 'rps'))} | "
              f"{ratio(g('otel', 'cpu'), g('shadowcat', 'cpu'))} | {ratio(g('otel-low', 'cpu'), g('shadowcat', 'cpu'))} | {p95('otel')} | {p95('otel-low')} |")
if streams:
    direct = next((r["result"] for r in streams if r["target"] == "direct" and r["result"]), None)
    print()
    print("| streams | target | opened | delivery p50 µs | p99 µs | added p99 vs direct µs | memory per stream KiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in streams:
        x = r["result"] or {}
        added = x.get("p99_us", 0) - direct["p99_us"] if direct and r["target"] != "direct" else None
        per = (r["busy_kb"] - r["idle_kb"]) / x["streams"] if x.get("streams") and r["target"] != "direct" else None
        print(f"| {r['streams']} | {r['target']} | {x.get('streams', 0)} | {x.get('p50_us', 0)} | {x.get('p99_us', 0)} | {'—' if added is None else added} | {'—' if per is None else f'{per:.1f}'} |")
PY
if [[ -n ${REC_ADMIN:-} ]]; then
  echo "recording: tape lines dropped, by reason; tape bytes on disk at the end:"
  curl -s "http://127.0.0.1:$REC_ADMIN/metrics" | grep '^shadowcat_tape_dropped_total' || true
  du -sb "$OUT/tapes" | cut -f1
fi
echo "raw results in $OUT"
