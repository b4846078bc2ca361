#!/usr/bin/env bash
# Runs the external MCP harness through Shadowcat: server-everything (npm) as the upstream, the
# official TypeScript SDK client, the conformance suite and curl probes (../shared/mcp-harness),
# plus the official Python SDK (mcp 1.x and 2.x from PyPI) as clients; then the same clients
# again over TLS (https://, a CA made by openssl here) and `curl --http2` (h2 by ALPN); then
# with the upstream behind TLS: server-everything behind a TLS-terminating nginx, the proxy
# with an https:// upstream trusting the same CA (tests/harness/tls_upstream.sh; needs nginx);
# then stdio upstreams: server-everything in stdio mode, server-memory and server-filesystem
# run by the proxy (tests/harness/stdio.sh).
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
echo "--- result cache: Python SDK 2.3 server (cache_hints) and client through the proxy"
"$MCP_HARNESS/py-mcp-2.3.0/bin/python" "$ROOT/tests/harness/python_cache.py" "$SHADOWCAT" || fail=1
echo "--- result cache: server-everything with a configured resources/list TTL, list_changed drops it"
CACHE_PORT=$(free_port)
CACHE_ADMIN=$(free_port)
CACHE_CONF=$(mktemp --suffix=.yaml)
printf 'listen: 127.0.0.1:%s\nadmin: 127.0.0.1:%s\nupstreams:\n  - name: everything\n    url: http://127.0.0.1:%s/mcp\ncache:\n  rules:\n    - {method: resources/list, upstream: everything, ttl: 60s, scope: public}\n' \
  "$CACHE_PORT" "$CACHE_ADMIN" "$EVERY_PORT" >"$CACHE_CONF"
RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --config "$CACHE_CONF" >>"$LOG" 2>&1 &
CACHE_PID=$!
trap 'kill $PROXY_PID $EVERY_PID $RULES_PID $CACHE_PID 2>/dev/null || true' EXIT
wait_port "$CACHE_PORT" || { cat "$LOG"; exit 1; }
"$MCP_HARNESS/py-mcp-2.3.0/bin/python" "$ROOT/tests/harness/everything_cache.py" \
  "http://127.0.0.1:$CACHE_PORT/mcp" "127.0.0.1:$CACHE_ADMIN" || fail=1
kill $CACHE_PID 2>/dev/null || true
echo "--- over TLS: the same clients against https:// (a test CA made here; each client trusts it)"
TLS_DIR=$(mktemp -d)
"$ROOT/tests/harness/make_certs.sh" "$TLS_DIR"
CA=$TLS_DIR/ca.crt
TLS_PORT=$(free_port)
RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --bind "127.0.0.1:$TLS_PORT" \
  --tls-cert "$TLS_DIR/server.crt" --tls-key "$TLS_DIR/server.key" \
  --upstream "http://127.0.0.1:$EVERY_PORT/mcp" --admin off >>"$LOG" 2>&1 &
TLS_PID=$!
trap 'kill $PROXY_PID $EVERY_PID $RULES_PID $TLS_PID 2>/dev/null || true; rm -rf "$TLS_DIR"' EXIT
TLS_URL="https://127.0.0.1:$TLS_PORT/mcp"
for _ in $(seq 200); do curl -s -o /dev/null --max-time 1 --cacert "$CA" "$TLS_URL" && break; sleep 0.05; done
# Every client trusts the test CA through its own variable: curl (the probes), Node (the SDK
# client and the conformance suite), Python's httpx (the Python SDK).
export CURL_CA_BUNDLE=$CA NODE_EXTRA_CA_CERTS=$CA SSL_CERT_FILE=$CA
h2=$(curl --http2 -sS -o /dev/null -w '%{http_version}' -H 'content-type: application/json' \
  -H 'accept: application/json, text/event-stream' -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$TLS_URL" || true)
if [[ $h2 == 2 ]]; then echo "PASS curl --http2 negotiated h2 by ALPN"; else echo "FAIL curl --http2 got HTTP/$h2"; fail=1; fi
# dns-rebinding-protection cannot reach the proxy over TLS: the conformance client (Node)
# checks the certificate against the forged Host (evil.example.com) and refuses it itself, so
# that scenario stays in the baseline here (the plaintext pass above shows the proxy's 403).
"$SHARED/run-all.sh" "$TLS_URL" "$SHARED/conformance-baseline.server-everything.yml" \
  | tee "$LOG.runall-tls" || fail=1
grep -qx "4 passed, 0 failed" "$LOG.runall-tls" || fail=1
for v in 1.30.0 2.3.0; do
  echo "--- python SDK mcp==$v through the proxy, over TLS"
  "$MCP_HARNESS/py-mcp-$v/bin/python" "$ROOT/tests/harness/python_client.py" "$TLS_URL" || fail=1
done
unset CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS SSL_CERT_FILE
echo "--- https:// upstream: server-everything behind a TLS-terminating nginx, the same test CA"
SHARED=$SHARED "$ROOT/tests/harness/tls_upstream.sh" "$EVERY_PORT" "$TLS_DIR" || fail=1
echo "--- stdio upstreams: server-everything (stdio), server-memory, server-filesystem (tests/harness/stdio.sh)"
SHARED=$SHARED "$ROOT/tests/harness/stdio.sh" || fail=1
if ((fail)); then
  echo "--- proxy log"; tail -50 "$LOG"
  echo "harness: FAILED"
  exit 1
fi
echo "harness: all passed"
