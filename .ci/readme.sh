#!/usr/bin/env bash
# The README's commands, read from the README itself (never a copy), so CI proves they work as
# written.
#
# Usage: .ci/readme.sh block N     print the README's Nth ```sh block (1: the quick start,
#                                  2: the test command); exit 1 if there is none or it is empty
#        .ci/readme.sh quickstart  run block 1 as a new user would (bash -c, from the repo root,
#                                  in its own process group), wait for 127.0.0.1:8080, run the
#                                  official TypeScript SDK client through it (initialize,
#                                  tools/list, tools/call echo, ...), read /metrics on :9090,
#                                  then stop everything it started and check the ports are free
# Env:   README           the file to read (default: README.md at the repo root)
#        QUICKSTART_WAIT  seconds to wait for the listeners (1200: a cold release build takes
#                         7 to 11 minutes on 2 cores)
#        MCP_HARNESS      as in tests/harness/run.sh (the SDK client's npm install, shared)
#        SHARED           the MCP harness (default ../shared/mcp-harness next to the repo)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
README=${README:-$ROOT/README.md}

block() { # the Nth fenced block opened by exactly ```sh
  local out
  out=$(awk -v n="$1" '
    !inside && /^```sh[[:space:]]*$/ { inside = 1; k++; next }
    inside && /^```[[:space:]]*$/ { inside = 0; next }
    inside && k == n { print }' "$README")
  [[ -n "${out//[[:space:]]/}" ]] || { echo "README block $1: no such (or an empty) \`\`\`sh block in $README" >&2; return 1; }
  printf '%s\n' "$out"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

quickstart() {
  local ports=(8080 9090 3001) # fixed by the README's command
  local p
  for p in "${ports[@]}"; do
    if port_open "$p"; then
      echo "quickstart: port $p is already in use; the README's command needs 8080, 9090 and 3001 free" >&2
      return 1
    fi
  done
  local cmd work log pid
  pgid= # global: the EXIT trap reads it after this function returns
  cmd=$(block 1)
  work=$(mktemp -d)
  log="$work/quickstart.log"
  echo "--- the README's quick start (first \`\`\`sh block of ${README#"$ROOT"/}), run as written:"
  printf '%s\n' "$cmd" | sed 's/^/    /'
  # Its own session and process group (setsid does not fork here: a background job of a
  # non-interactive shell is no group leader), so one kill stops the proxy, cargo, npx and node.
  (cd "$ROOT" && exec setsid bash -c "$cmd" </dev/null >"$log" 2>&1) &
  pid=$!
  pgid=$pid
  sleep 0.2
  local own
  own=$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ') || true # empty when it already ended
  if [[ -n "$own" && "$own" != "$pid" ]]; then
    echo "quickstart: the command is not in a process group of its own (pgid $own)"
    kill "$pid"
    return 1
  fi

  stop() {
    kill -TERM -- "-$pgid" 2>/dev/null || return 0
    for _ in $(seq 60); do # shutdown.grace_period is 10 s
      kill -0 -- "-$pgid" 2>/dev/null || return 0
      sleep 0.5
    done
    echo "quickstart: still running 30 s after SIGTERM, killing"
    kill -KILL -- "-$pgid" 2>/dev/null || true
    sleep 1
  }
  fail() {
    echo "quickstart: FAILED: $*"
    echo "--- output of the README's command ($log)"
    cat "$log"
    stop
    return 1
  }
  trap '[[ -z "${pgid:-}" ]] || kill -KILL -- "-$pgid" 2>/dev/null || true' EXIT

  local wait=${QUICKSTART_WAIT:-1200} t0=$SECONDS last=$SECONDS
  for p in 8080 3001; do
    until port_open "$p"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        local rc=0
        wait "$pid" || rc=$?
        fail "the command ended (exit status $rc) before 127.0.0.1:$p answered"
        return 1
      fi
      ((SECONDS - t0 < wait)) || { fail "nothing on 127.0.0.1:$p after $wait s"; return 1; }
      if ((SECONDS - last >= 60)); then
        last=$SECONDS
        echo "    ... $((SECONDS - t0)) s, waiting for :$p; last output: $(tail -n1 "$log" | cut -c1-120)"
      fi
      sleep 0.5
    done
    echo "--- 127.0.0.1:$p answers ($((SECONDS - t0)) s)"
  done

  # The official TypeScript SDK client (../shared/mcp-harness/sdk-client.cjs): initialize and
  # session id, tools/list, tools/call echo (and progress over POST SSE, a notification on the
  # GET stream, DELETE).
  local shared=${SHARED:-$ROOT/../shared/mcp-harness}
  export MCP_HARNESS=${MCP_HARNESS:-$HOME/.cache/shadowcat/mcp-harness}
  [[ -f "$shared/sdk-client.cjs" ]] || { fail "no MCP harness at $shared (set SHARED to ../shared/mcp-harness)"; return 1; }
  if [[ ! -d "$MCP_HARNESS/node_modules/@modelcontextprotocol/sdk" ]]; then
    mkdir -p "$MCP_HARNESS"
    "$shared/setup.sh" >"$work/setup.log" 2>&1 || { cat "$work/setup.log"; fail "harness setup failed"; return 1; }
  fi
  echo "--- the TypeScript SDK client through http://127.0.0.1:8080/mcp"
  NODE_PATH="$MCP_HARNESS/node_modules" node "$shared/sdk-client.cjs" http://127.0.0.1:8080/mcp ||
    { fail "the MCP client failed through the proxy"; return 1; }

  echo "--- http://127.0.0.1:9090/metrics"
  local metrics m
  metrics=$(curl -fsS --max-time 10 http://127.0.0.1:9090/metrics) || { fail "no /metrics on 127.0.0.1:9090"; return 1; }
  for m in initialize tools/list tools/call; do
    local line
    line=$(grep -m1 -E "^shadowcat_requests_total\{mcp_method=\"$m\",status=\"2[0-9][0-9]\"\} [1-9]" <<<"$metrics") ||
      { fail "/metrics counts no successful $m"; return 1; }
    echo "    $line"
  done

  echo "--- stopping the README's command (process group $pgid)"
  stop
  trap - EXIT
  pgid=
  for p in "${ports[@]}"; do
    if port_open "$p"; then
      echo "quickstart: FAILED: port $p still open after the stop"
      return 1
    fi
  done
  echo "--- ports 8080, 9090 and 3001 are free again"
  echo "quickstart: passed ($((SECONDS - t0)) s)"
  rm -rf "$work"
}

case "${1:-}" in
  block) block "${2:?usage: readme.sh block N}" ;;
  quickstart) quickstart ;;
  *) echo "usage: .ci/readme.sh block N | quickstart" >&2; exit 2 ;;
esac
