#!/usr/bin/env bash
# Runs the external MCP harness through Shadowcat: server-everything (npm) as the upstream, the
# official TypeScript SDK client, the conformance suite and curl probes (../shared/mcp-harness),
# plus the official Python SDK (mcp 1.x and 2.x from PyPI) as clients.
#
# Usage: tests/harness/run.sh            (from the repo root; installs what it needs)
# Env:   MCP_HARNESS  scratch dir for npm/pip installs (default ~/.cache/shadowcat/mcp-harness)
#        SHADOWCAT    proxy binary (default: cargo build, target/debug/shadowcat)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/mcp-harness}
export MCP_HARNESS=${MCP_HARNESS:-$HOME/.cache/shadowcat/mcp-harness}
[[ -d "$SHARED" ]] || { echo "no harness at $SHARED"; exit 1; }

if [[ ! -x "$MCP_HARNESS/node22" ]]; then
  mkdir -p "$MCP_HARNESS"
  "$SHARED/setup.sh"
fi
for v in 1.30.0 2.3.0; do
  venv="$MCP_HARNESS/py-mcp-$v"
  if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import mcp" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "mcp==$v"
  fi
done

if [[ -z "${SHADOWCAT:-}" ]]; then
  (cd "$ROOT" && cargo build -q --bin shadowcat)
  SHADOWCAT=$ROOT/target/debug/shadowcat
fi
export SHADOWCAT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }

EVERY_PORT=$(free_port)
EVERY_PID=$("$SHARED/start-everything.sh" "$EVERY_PORT")
PROXY_PORT=$(free_port)
LOG=$(mktemp)
RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --bind "127.0.0.1:$PROXY_PORT" \
  --upstream "http://127.0.0.1:$EVERY_PORT/mcp" --admin off >"$LOG" 2>&1 &
PROXY_PID=$!
trap 'kill $PROXY_PID $EVERY_PID 2>/dev/null || true' EXIT
wait_port "$PROXY_PORT" || { cat "$LOG"; exit 1; }
URL="http://127.0.0.1:$PROXY_PORT/mcp"
echo "server-everything on :$EVERY_PORT, shadowcat on :$PROXY_PORT"

fail=0
# The proxy enforces Origin/Host, so the conformance scenario dns-rebinding-protection passes
# through it; the runner reports a passing baseline entry as stale, so use a copy without it.
BASELINE=$(mktemp)
grep -v 'dns-rebinding-protection' "$SHARED/conformance-baseline.server-everything.yml" >"$BASELINE"
echo "--- run-all.sh through the proxy"
"$SHARED/run-all.sh" "$URL" "$BASELINE" | tee "$LOG.runall" || fail=1
grep -qx "4 passed, 0 failed" "$LOG.runall" || fail=1
echo "--- http-probe.sh, STRICT (403 for a foreign Origin, 404 for unknown/ended sessions)"
STRICT=1 "$SHARED/http-probe.sh" "$URL" || fail=1
echo "--- TypeScript SDK through a proxy with interceptor rules (tests/harness/rules.yaml)"
RULES_PORT=$(free_port)
RULES_CONF=$(mktemp --suffix=.yaml)
printf 'listen: 127.0.0.1:%s\nadmin: null\nupstreams:\n  - name: everything\n    url: http://127.0.0.1:%s/mcp\ninterceptors:\n  rules_file: %s\n' \
  "$RULES_PORT" "$EVERY_PORT" "$ROOT/tests/harness/rules.yaml" >"$RULES_CONF"
RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --config "$RULES_CONF" >>"$LOG" 2>&1 &
RULES_PID=$!
trap 'kill $PROXY_PID $EVERY_PID $RULES_PID 2>/dev/null || true' EXIT
wait_port "$RULES_PORT" || { cat "$LOG"; exit 1; }
NODE_PATH="$MCP_HARNESS/node_modules" node "$ROOT/tests/harness/interceptor_client.cjs" \
  "http://127.0.0.1:$RULES_PORT/mcp" || fail=1
echo "--- conformance client scenario sse-retry: the TypeScript SDK client through the proxy"
SHADOWCAT="$SHADOWCAT" "$MCP_HARNESS/node22" "$MCP_HARNESS/node_modules/@modelcontextprotocol/conformance/dist/index.js" \
  client --scenario sse-retry --command "$ROOT/tests/harness/conformance_client.sh" >"$LOG.retry" 2>&1 || true
grep -E 'Passed:|OVERALL' "$LOG.retry"
grep -q 'OVERALL: PASSED' "$LOG.retry" || { tail -30 "$LOG.retry"; fail=1; }
for v in 1.30.0 2.3.0; do
  echo "--- python SDK mcp==$v through the proxy"
  "$MCP_HARNESS/py-mcp-$v/bin/python" "$ROOT/tests/harness/python_client.py" "$URL" || fail=1
done
if ((fail)); then
  echo "--- proxy log"; tail -50 "$LOG"
  echo "harness: FAILED"
  exit 1
fi
echo "harness: all passed"
