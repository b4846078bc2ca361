#!/usr/bin/env bash
# Stdio upstreams through Shadowcat with real servers and real clients (issue 18):
# 1. server-everything started in stdio mode behind the proxy, `mode: per_session` and then
#    `mode: shared`: the external harness (run-all: http-probe, resume-check, the TypeScript
#    SDK client, the conformance suite with its baseline), the STRICT probe, and the Python
#    SDK clients (mcp 1.x; mcp 2.x speaks 2026-07-28 to the shared pool), as for its HTTP mode.
# 2. server-memory and server-filesystem (on a temporary folder) behind the proxy give the
#    TypeScript SDK and Python SDK clients the same results as a direct stdio connection to
#    the same server (stdio_compare.cjs, stdio_compare.py).
#
# Usage: tests/harness/stdio.sh   (called by tests/harness/run.sh, which installs the harness)
# Env:   MCP_HARNESS, SHADOWCAT, SHARED as for run.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/mcp-harness}
H=${MCP_HARNESS:?set MCP_HARNESS (see tests/harness/run.sh)}
SHADOWCAT=${SHADOWCAT:?set SHADOWCAT to the proxy binary}
# Pinned, as the harness pins server-everything.
PACKAGES=(@modelcontextprotocol/server-memory@2026.8.31 @modelcontextprotocol/server-filesystem@2026.8.31)
if [[ ! -f "$H/node_modules/@modelcontextprotocol/server-memory/dist/index.js" \
   || ! -f "$H/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" ]]; then
  (cd "$H" && npm install --no-audit --no-fund --loglevel=error "${PACKAGES[@]}")
fi
EVERYTHING=$H/node_modules/@modelcontextprotocol/server-everything/dist/index.js
MEMORY=$H/node_modules/@modelcontextprotocol/server-memory/dist/index.js
FILESYSTEM=$H/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }

WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; wait "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
LOG=$WORK/proxy.log

# start_proxy NAME UPSTREAM-YAML: a proxy with one stdio upstream; sets URL. (Not called in
# $(...): a subshell would keep the pid from the trap that stops the proxy.)
start_proxy() {
  local port conf
  port=$(free_port)
  conf=$WORK/$1.yaml
  printf 'listen: 127.0.0.1:%s\nadmin: null\nupstreams:\n%s\n' "$port" "$2" >"$conf"
  RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --config "$conf" >>"$LOG" 2>&1 &
  PIDS+=($!)
  wait_port "$port" || { cat "$LOG" >&2; exit 1; }
  URL="http://127.0.0.1:$port/mcp"
}

fail=0
BASELINE=$WORK/baseline.yml
grep -v 'dns-rebinding-protection' "$SHARED/conformance-baseline.server-everything.yml" >"$BASELINE"
for mode in per_session shared; do
  start_proxy "everything-$mode" "  - name: everything
    command: [node, $EVERYTHING, stdio]
    mode: $mode
    pool_size: 2"
  echo "--- stdio server-everything ($mode) through the proxy: run-all.sh"
  "$SHARED/run-all.sh" "$URL" "$BASELINE" | tee "$WORK/runall-$mode" || fail=1
  grep -qx "4 passed, 0 failed" "$WORK/runall-$mode" || fail=1
  echo "--- stdio server-everything ($mode): http-probe.sh, STRICT"
  STRICT=1 "$SHARED/http-probe.sh" "$URL" || fail=1
  for v in 1.30.0 2.3.0; do
    echo "--- stdio server-everything ($mode): python SDK mcp==$v"
    "$H/py-mcp-$v/bin/python" "$ROOT/tests/harness/python_client.py" "$URL" || fail=1
  done
done

MEMORY_FILE=$WORK/memory.jsonl
start_proxy memory "  - name: memory
    command: [node, $MEMORY]
    env: {MEMORY_FILE_PATH: $MEMORY_FILE}"
echo "--- server-memory: direct stdio and through the proxy give equal results"
NODE_PATH="$H/node_modules" node "$ROOT/tests/harness/stdio_compare.cjs" memory "$URL" "$MEMORY_FILE" || fail=1
for v in 1.30.0 2.3.0; do
  "$H/py-mcp-$v/bin/python" "$ROOT/tests/harness/stdio_compare.py" memory "$URL" "$MEMORY_FILE" "$MEMORY" || fail=1
done

FOLDER=$WORK/files
mkdir -p "$FOLDER"
start_proxy filesystem "  - name: files
    command: [node, $FILESYSTEM, $FOLDER]"
echo "--- server-filesystem on a temporary folder: direct stdio and through the proxy give equal results"
NODE_PATH="$H/node_modules" node "$ROOT/tests/harness/stdio_compare.cjs" filesystem "$URL" "$FOLDER" || fail=1
for v in 1.30.0 2.3.0; do
  "$H/py-mcp-$v/bin/python" "$ROOT/tests/harness/stdio_compare.py" filesystem "$URL" "$FOLDER" "$FILESYSTEM" || fail=1
done

if ((fail)); then
  echo "--- proxy log"; tail -50 "$LOG"
  echo "stdio harness: FAILED"
  exit 1
fi
echo "stdio harness: all passed"
