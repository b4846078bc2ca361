#!/usr/bin/env bash
# A stdio MCP server behind Shadowcat beside the same server behind supergateway (npm, the
# common stdio-to-HTTP bridge): JSON-RPC `tools/call` (server-everything's `echo`, run with
# `stdio`) in one MCP session, one request at a time at a fixed rate (oha `-c 1 -q RATE`;
# one at a time because a JSON-RPC id may not be reused while in flight and oha sends one
# body). Per target: p50/p95/p99 and the bridge process's own CPU per request (utime+stime of
# Shadowcat, or of supergateway's node process, from /proc; the MCP server child is not
# counted for either). The generator runs on core GEN_CPU (0), each bridge and its server on
# PROXY_CPU (1); targets are interleaved over ROUNDS rounds and the median round is kept.
#
# Usage: loadtest/stdio.sh     Env: ROUNDS (3) DURATION (15, s) RATE (100) SHADOWCAT_BIN
#        (default: target/release/shadowcat under CARGO_TARGET_DIR) MCP_HARNESS OHA
# Needs: node, python3, curl, taskset, oha (cargo install oha --root ~/.cache/shadowcat/oha),
# the harness's server-everything and supergateway@4.0.0 (installed here into MCP_HARNESS).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
RATE=${RATE:-100}
GEN_CPU=${GEN_CPU:-0}
PROXY_CPU=${PROXY_CPU:-1}
H=${MCP_HARNESS:-$HOME/.cache/shadowcat/mcp-harness}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cache/shadowcat/oha/bin/oha")}
SHADOWCAT_BIN=${SHADOWCAT_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/shadowcat}
for tool in node python3 curl taskset "$OHA" "$SHADOWCAT_BIN"; do
  command -v "$tool" >/dev/null || { echo "stdio.sh: $tool is missing"; exit 1; }
done
EVERYTHING=$H/node_modules/@modelcontextprotocol/server-everything/dist/index.js
[[ -f $EVERYTHING ]] || { echo "stdio.sh: run tests/harness/run.sh once (server-everything)"; exit 1; }
if [[ ! -f $H/node_modules/supergateway/dist/index.js ]]; then
  (cd "$H" && npm install --no-audit --no-fund --loglevel=error supergateway@4.0.0)
fi
OUT="$ROOT/loadtest/out/stdio-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
ACCEPT='accept: application/json, text/event-stream'
CALL='{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}'

# start TARGET PORT: the bridge on PROXY_CPU; sets PID, the process measured (not called in
# $(...), so the exit trap knows every pid).
start() {
  case $1 in
    shadowcat)
      printf 'listen: 127.0.0.1:%s\nadmin: null\nthreads: 1\nupstreams:\n  - name: everything\n    command: [node, %s, stdio]\n' \
        "$2" "$EVERYTHING" >"$OUT/shadowcat.yaml"
      RUST_LOG=warn taskset -c "$PROXY_CPU" "$SHADOWCAT_BIN" reverse --config "$OUT/shadowcat.yaml" \
        >>"$OUT/shadowcat.log" 2>&1 &
      ;;
    supergateway)
      taskset -c "$PROXY_CPU" node "$H/node_modules/supergateway/dist/index.js" \
        --stdio "node $EVERYTHING stdio" --outputTransport streamableHttp --stateful \
        --port "$2" --logLevel none >>"$OUT/supergateway.log" 2>&1 &
      ;;
  esac
  PIDS+=($!)
  PID=$!
}

# session URL: initialize, then notifications/initialized; prints the session id.
session() {
  local sid
  sid=$(curl -s -D - -o /dev/null -H "$ACCEPT" -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"load","version":"1"}}}' \
    "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="mcp-session-id"{print $2}')
  curl -s -o /dev/null -H "$ACCEPT" -H 'content-type: application/json' -H "mcp-session-id: $sid" \
    -H 'mcp-protocol-version: 2025-06-18' -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' "$1"
  echo "$sid"
}

for round in $(seq "$ROUNDS"); do
  for target in shadowcat supergateway; do
    port=$(free_port)
    start "$target" "$port"
    pid=$PID
    wait_port "$port" || { echo "$target did not start"; tail "$OUT/$target.log"; exit 1; }
    url="http://127.0.0.1:$port/mcp"
    sid=$(session "$url")
    [[ -n $sid ]] || { echo "$target: no session id"; exit 1; }
    # Warm-up (the server's first calls, the bridge's JIT or pools), not measured.
    taskset -c "$GEN_CPU" "$OHA" --no-tui -c 1 -q "$RATE" -z 3s -m POST -H "$ACCEPT" \
      -H "mcp-session-id: $sid" -H 'mcp-protocol-version: 2025-06-18' -T application/json \
      -d "$CALL" --output-format quiet "$url" >/dev/null
    before=$(ticks "$pid")
    taskset -c "$GEN_CPU" "$OHA" --no-tui -c 1 -q "$RATE" -z "${DURATION}s" -m POST -H "$ACCEPT" \
      -H "mcp-session-id: $sid" -H 'mcp-protocol-version: 2025-06-18' -T application/json \
      -d "$CALL" --output-format json "$url" >"$OUT/$target-$round.json"
    after=$(ticks "$pid")
    echo "$((after - before))" >"$OUT/$target-$round.ticks"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "round $round: $target done"
  done
done

python3 - "$OUT" "$ROUNDS" "$HZ" <<'EOF' | tee "$OUT/report.md"
import json, statistics, sys
out, rounds, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = {}
for target in ("shadowcat", "supergateway"):
    runs = []
    for r in range(1, rounds + 1):
        data = json.load(open(f"{out}/{target}-{r}.json"))
        ticks = int(open(f"{out}/{target}-{r}.ticks").read())
        ok = sum(v for k, v in data["statusCodeDistribution"].items() if k == "200")
        pct = data["latencyPercentiles"]
        runs.append({
            "p50": pct["p50"] * 1000, "p95": pct["p95"] * 1000, "p99": pct["p99"] * 1000,
            "rps": data["summary"]["requestsPerSec"], "ok": ok,
            # The request cut by the end of the run is not an error.
            "errors": sum(data["statusCodeDistribution"].values()) - ok
            + sum(v for k, v in data.get("errorDistribution", {}).items() if "deadline" not in k),
            "cpu_us": ticks / hz * 1e6 / max(ok, 1),
        })
    runs.sort(key=lambda x: x["p95"])
    rows[target] = runs[len(runs) // 2] | {"p95s": [round(r["p95"], 2) for r in runs]}
print("| target | p50 ms | p95 ms | p99 ms | req/s | errors | CPU µs/request | p95 of each round |")
print("|---|---|---|---|---|---|---|---|")
for t, r in rows.items():
    print(f"| {t} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['rps']:.0f} | {r['errors']} | {r['cpu_us']:.0f} | {r['p95s']} |")
s, g = rows["shadowcat"], rows["supergateway"]
print()
print(f"Shadowcat / supergateway: p50 {s['p50']/g['p50']:.2f}x, p95 {s['p95']/g['p95']:.2f}x, "
      f"p99 {s['p99']/g['p99']:.2f}x, CPU per request {s['cpu_us']/g['cpu_us']:.2f}x")
EOF
echo "raw results in $OUT"
