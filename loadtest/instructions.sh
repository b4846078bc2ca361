#!/usr/bin/env bash
# User-space instructions per response, counted by callgrind: a cost measure that does not move
# with what else the machine runs (wall-clock ratios from saturate.sh do, by 20-40% here when
# builds share the cores). Kernel time (syscalls, TCP) is not counted: compare the syscalls per
# response with strace -c if a change touches them.
#
# Each target runs under `valgrind --tool=callgrind` against the mock upstream, fed for SECONDS
# by shadowcat-saturate (8 connections, every connection in one session, as saturate.sh); the
# count of an idle run (start, then stop) is subtracted before dividing by the responses.
#   shadowcat  SHADOWCAT_BIN (default: built from this tree), `threads: 1`, admin off
#   before     SHADOWCAT_BEFORE_BIN (only when set)
#   bare       shadowcat-bare-pingora (Pingora's proxy path, no logic)
# Scenarios: json (tools/call, JSON answer) and sse (tools/call answered as an SSE stream of
# one event, the result).
#
# Usage: loadtest/instructions.sh        Env: SECONDS_PER_RUN (15)  TARGETS  BUILD (1)
# Needs: cargo, python3, valgrind.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUN_S=${SECONDS_PER_RUN:-15}
for tool in cargo python3 valgrind; do
  command -v "$tool" >/dev/null || { echo "instructions.sh: $tool is missing"; exit 1; }
done
OUT="$ROOT/loadtest/out/instructions-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
if [[ ${BUILD:-1} != 0 ]]; then
  (cd "$ROOT" && cargo build -q --release -p shadowcat-loadtest --bins && cargo build -q --release -p shadowcat --bin shadowcat)
fi
declare -A EXE=([shadowcat]=${SHADOWCAT_BIN:-$BIN/shadowcat} [bare]=$BIN/shadowcat-bare-pingora)
[[ -n ${SHADOWCAT_BEFORE_BIN:-} ]] && EXE[before]=$SHADOWCAT_BEFORE_BIN
TARGETS=${TARGETS:-"bare before shadowcat"}

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

MOCK=$(free_port)
"$BIN/shadowcat-mock-upstream" "127.0.0.1:$MOCK" --threads 1 >"$OUT/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK" || { echo "instructions.sh: the mock never listened"; exit 1; }
printf 'threads: 1\nsessions:\n  max_per_ip: 100000\n' >"$OUT/shadowcat.yaml"

# count TARGET SCENARIO SECONDS: prints "<instructions> <responses>"
count() {
  local target=$1 scenario=$2 secs=$3 port out vp n=0
  port=$(free_port)
  out="$OUT/callgrind.$target.$scenario.$secs"
  local cmd=("${EXE[$target]}")
  if [[ $target == bare ]]; then
    cmd+=("127.0.0.1:$port" "127.0.0.1:$MOCK" 1)
  else
    cmd+=(reverse --config "$OUT/shadowcat.yaml" --bind "127.0.0.1:$port" --admin off --upstream "http://127.0.0.1:$MOCK/mcp")
  fi
  RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$out" "${cmd[@]}" >"$out.log" 2>&1 &
  vp=$!
  wait_port "$port" || { echo "instructions.sh: $target never listened ($out.log)"; exit 1; }
  if ((secs > 0)); then
    local hdr=()
    [[ $scenario == sse ]] && hdr=(--header 'x-mock-mode: sse' --header 'x-mock-events: 0')
    n=$("$BIN/shadowcat-saturate" --url "http://127.0.0.1:$port/mcp" --target "$target" --connections 8 \
      --duration-s "$secs" --warmup-s 0 "${hdr[@]}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["all_requests"])')
  fi
  # SIGINT (Pingora's fast stop; SIGTERM waits out a grace period), a second after the port
  # opened: a background job of a script starts with SIGINT ignored until Pingora installs
  # its handler. SIGKILL would lose the counts.
  sleep 1
  kill -INT "$vp"
  wait "$vp" || true
  echo "$(awk '/^(summary|totals):/ {print $2; exit}' "$out") $n"
}

echo "| scenario | target | responses | instructions per response |"
echo "|---|---|---:|---:|"
for scenario in json sse; do
  for target in $TARGETS; do
    [[ -n ${EXE[$target]:-} ]] || continue
    read -r idle _ < <(count "$target" "$scenario" 0)
    read -r busy n < <(count "$target" "$scenario" "$RUN_S")
    ((n > 0)) || { echo "instructions.sh: $target answered nothing in $scenario"; exit 1; }
    echo "| $scenario | $target | $n | $(( (busy - idle) / n )) |"
  done
done
echo
echo "(raw callgrind files in $OUT)"
