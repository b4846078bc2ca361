#!/usr/bin/env bash
# `conformance client --command` target: the suite's test server URL is the last argument.
# Starts Shadowcat in front of it and runs the TypeScript SDK client through the proxy.
# Env: SHADOWCAT (proxy binary), MCP_HARNESS (for the SDK's node_modules).
set -euo pipefail
SERVER=${!#}
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOG=$(mktemp)
RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --bind "127.0.0.1:$PORT" --upstream "$SERVER" --admin off >"$LOG" 2>&1 &
PROXY=$!
trap 'kill $PROXY 2>/dev/null || true' EXIT
for _ in $(seq 200); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" && break; sleep 0.05; done
NODE_PATH="$MCP_HARNESS/node_modules" node "$HERE/conformance_client.cjs" "http://127.0.0.1:$PORT/mcp" || { cat "$LOG" >&2; exit 1; }
