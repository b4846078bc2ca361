#!/usr/bin/env bash
# Tapes end to end (issue 21): the official TypeScript SDK client (tests/harness/tape_client.cjs:
# tools, a progress-reporting tool, resources, prompts, a notification on the GET stream,
# DELETE) through `shadowcat reverse --record DIR` in front of server-everything; then
# server-everything is stopped and the same client runs against `shadowcat replay` of the
# tape, with no upstream at all: its results and progress notifications (in order) must be the
# ones of the recorded run. The tape must pass `tape check`, and its HAR export must pass
# har-validator (the HAR 1.2 JSON schema, from npm).
# Usage: tests/harness/tape_replay.sh          (run.sh calls it)
# Env:   SHADOWCAT, MCP_HARNESS, SHARED (run.sh sets them)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SHARED=${SHARED:-$ROOT/../shared/mcp-harness}
: "${SHADOWCAT:?set SHADOWCAT}" "${MCP_HARNESS:?set MCP_HARNESS}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; return 1; }
client() { NODE_PATH="$MCP_HARNESS/node_modules" timeout 90 node "$ROOT/tests/harness/tape_client.cjs" "$1"; }

WORK=$(mktemp -d)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
fail=0

EVERY_PORT=$(free_port)
EVERY_PID=$("$SHARED/start-everything.sh" "$EVERY_PORT")
PIDS+=("$EVERY_PID")
PROXY_PORT=$(free_port)
RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --bind "127.0.0.1:$PROXY_PORT" \
  --upstream "http://127.0.0.1:$EVERY_PORT/mcp" --admin off --record "$WORK/tapes" >"$WORK/proxy.log" 2>&1 &
PROXY_PID=$!
PIDS+=("$PROXY_PID")
wait_port "$PROXY_PORT" || { cat "$WORK/proxy.log"; exit 1; }
echo "--- recording: TypeScript SDK client through shadowcat --record"
client "http://127.0.0.1:$PROXY_PORT/mcp" >"$WORK/live.out" || { cat "$WORK/live.out" "$WORK/proxy.log"; exit 1; }
# The writer flushes when its queue runs dry; give it a moment, then stop both.
sleep 0.5
kill "$PROXY_PID" "$EVERY_PID"
wait "$PROXY_PID" 2>/dev/null || true
mapfile -t TAPES < <(ls "$WORK"/tapes/*.jsonl)
echo "tapes: ${#TAPES[@]}"
[[ ${#TAPES[@]} -eq 1 ]] || { echo "FAIL: expected one tape for one session"; fail=1; }
TAPE=${TAPES[0]}
"$SHADOWCAT" tape check "$TAPE" || fail=1
"$SHADOWCAT" tape show "$TAPE" | head -12

echo "--- replay: the same client against shadowcat replay, server-everything stopped"
curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$EVERY_PORT/mcp" && { echo "FAIL: upstream still up"; fail=1; }
REPLAY_PORT=$(free_port)
"$SHADOWCAT" replay "$TAPE" --bind "127.0.0.1:$REPLAY_PORT" --speed 1 >"$WORK/replay.log" 2>&1 &
PIDS+=($!)
wait_port "$REPLAY_PORT" || { cat "$WORK/replay.log"; exit 1; }
client "http://127.0.0.1:$REPLAY_PORT/mcp" >"$WORK/replayed.out" || { cat "$WORK/replayed.out" "$WORK/replay.log"; fail=1; }
python3 - "$WORK/live.out" "$WORK/replayed.out" <<'PY' || fail=1
import json, sys
def result(path):
    for line in open(path):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    sys.exit(f"FAIL: no RESULT line in {path}")
live, replayed = result(sys.argv[1]), result(sys.argv[2])
assert live["progress"] and len(live["progress"]) == 4, f"recorded run: progress {live['progress']}"
assert live["getStream"] == "resources/updated", "recorded run: no update on the GET stream"
for key in live:
    status = "ok" if live[key] == replayed.get(key) else "DIFFERS"
    print(f"{status:8} {key}")
if live != replayed:
    sys.exit(f"FAIL: replay differs\nlive:     {json.dumps(live)}\nreplayed: {json.dumps(replayed)}")
print(f"PASS replay: same results, progress {live['progress']} in order")
PY

echo "--- tape export --format har, checked by har-validator (HAR 1.2 schema)"
if [[ ! -d "$MCP_HARNESS/node_modules/har-validator" ]]; then
  (cd "$MCP_HARNESS" && npm install --no-audit --no-fund --loglevel=error har-validator@5.1.5)
fi
"$SHADOWCAT" tape export "$TAPE" --format har >"$WORK/tape.har"
NODE_PATH="$MCP_HARNESS/node_modules" node -e '
  const validate = require("har-validator");
  const har = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  validate.har(har).then(
    () => console.log(`PASS har-validator: ${har.log.entries.length} entries`),
    (e) => { console.error("FAIL har-validator:", JSON.stringify(e.errors || e.message)); process.exit(1); });
' "$WORK/tape.har" || fail=1

[[ $fail -eq 0 ]] && echo "PASS tape_replay.sh" || echo "FAIL tape_replay.sh"
exit $fail
