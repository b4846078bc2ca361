#!/usr/bin/env bash
# The harness's clients through Shadowcat to an https:// upstream: server-everything behind a
# TLS-terminating nginx (h2 and http/1.1 offered by ALPN, a leaf of the harness's test CA), the
# proxy trusting that CA only through `upstreams[].tls.ca_file`. Seven proxies, each to an
# nginx server block of its own (each block logs protocol, SNI and client verification):
#   default  `tls: {ca_file}`, http2 left at its default: resume-check (curl), the TS SDK client
#            (initialize, tools/list, tools/call, SSE progress, resources, GET stream), the
#            Python SDK 1.x (progress over SSE) and 2.x; and requests did reach nginx
#   h1       `http2: never`: run-all.sh (probe, resume, TS SDK client, conformance suite), and
#            nginx logged HTTP/1.1 only
#   h2       `http2: always`, `tls.server_name: localhost` (the URL stays https://127.0.0.1):
#            the clients of `default`, and nginx logged HTTP/2.0 with SNI localhost only
#   no-ca    no tls block: the test CA is not trusted, so initialize must get a 5xx and never
#            reach nginx's upstream
#   insecure `tls: {insecure_skip_verify: true}` and no CA, `http2: never`: initialize gets 200
#   mtls     nginx requires a client certificate of the test CA (`http2: never`): with
#            `tls.cert_file/key_file` initialize gets 200 and nginx logs the client verified;
#            without them, not 200
# The probe and the conformance suite run over HTTP/1.1 only: nginx 1.22 over h2+TLS holds a
# response's HEADERS until its first body byte (a GET stream opens with no event, so its
# headers wait for the first one; `curl --http2` straight at nginx shows it, h2c does not), and
# the probe wants the GET stream's headers within 1 s.
# Usage: tests/harness/tls_upstream.sh <server-everything port> <dir from make_certs.sh>
# Env:   SHADOWCAT, MCP_HARNESS, SHARED (run.sh sets them)
# Prints run-all.sh's 'N passed, M failed' line and one PASS/FAIL line per other check (14);
# exits 0 only if all pass, fails at once (no hang) if the proxy refuses the config.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
EVERY_PORT=${1:?usage: tls_upstream.sh <server-everything port> <cert dir>}
CERTS=$(cd "${2:?usage: tls_upstream.sh <server-everything port> <cert dir>}" && pwd)
: "${SHADOWCAT:?set SHADOWCAT}" "${MCP_HARNESS:?set MCP_HARNESS}" "${SHARED:?set SHARED}"
# Debian puts nginx in /usr/sbin, outside a normal user's PATH.
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || { echo "FAIL tls-upstream: no nginx (apt-get install nginx)"; exit 1; }
# The proxy must trust the test CA through ca_file alone, not through the environment.
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE NODE_EXTRA_CA_CERTS

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

DIR=$(mktemp -d)
# Started as root, nginx's workers run as nobody: they must reach their temp paths in here.
chmod 755 "$DIR"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$DIR"
}
trap cleanup EXIT
fail=0
pass() { echo "PASS $1"; }
flunk() { echo "FAIL $1"; fail=1; }

# nginx: its own prefix, pid, logs and temp paths under $DIR (no root-owned default path is
# touched, so it also runs as an unprivileged user); one server block per proxy under test,
# each with its own access log of protocol and SNI.
NG_DEFAULT=$(free_port); NG_H1=$(free_port); NG_H2=$(free_port); NG_NOCA=$(free_port)
NG_INSECURE=$(free_port); NG_MTLS=$(free_port)
server_block() { # PORT NAME [more directives]
  cat <<BLOCK
  server {
    listen 127.0.0.1:$1 ssl http2;
    ssl_certificate $CERTS/server.crt;
    ssl_certificate_key $CERTS/server.key;
    ${3:-}
    access_log $DIR/access-$2.log tls;
    location / {
      proxy_pass http://127.0.0.1:$EVERY_PORT;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_cache off;
      proxy_read_timeout 1h;
    }
  }
BLOCK
}
{
  cat <<CONF
worker_processes 1;
daemon off;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log warn;
events { worker_connections 1024; }
http {
  client_body_temp_path $DIR/body;
  proxy_temp_path $DIR/proxy;
  fastcgi_temp_path $DIR/fastcgi;
  uwsgi_temp_path $DIR/uwsgi;
  scgi_temp_path $DIR/scgi;
  log_format tls '\$server_protocol \$ssl_server_name \$ssl_protocol \$request_method \$status \$ssl_client_verify';
CONF
  server_block "$NG_DEFAULT" default
  server_block "$NG_H1" h1
  server_block "$NG_H2" h2
  server_block "$NG_NOCA" no-ca
  server_block "$NG_INSECURE" insecure
  server_block "$NG_MTLS" mtls "ssl_verify_client on; ssl_client_certificate $CERTS/ca.crt;"
  echo "}"
} >"$DIR/nginx.conf"
"$NGINX" -e "$DIR/nginx-error.log" -p "$DIR" -c "$DIR/nginx.conf" &
PIDS+=("$!")
for p in "$NG_DEFAULT" "$NG_H1" "$NG_H2" "$NG_NOCA" "$NG_INSECURE" "$NG_MTLS"; do
  wait_port "$p" || { echo "FAIL tls-upstream: nginx did not open :$p"; cat "$DIR/nginx-error.log"; exit 1; }
done
# The TLS front itself, before any proxy: h2 by ALPN, the test CA's leaf, server-everything behind.
front=$(curl -sS --http2 --cacert "$CERTS/ca.crt" -o /dev/null -w '%{http_version} %{http_code}' \
  "https://127.0.0.1:$NG_DEFAULT/mcp" || true)
[[ $front == "2 "* ]] || { echo "FAIL tls-upstream: nginx front answered '$front' (want h2)"; cat "$DIR/nginx-error.log"; exit 1; }
# The probe above is in the first access log: start the logs empty for the proxies' requests.
for name in default h1 h2 no-ca insecure mtls; do : >"$DIR/access-$name.log"; done
echo "nginx TLS front on :$NG_DEFAULT :$NG_H1 :$NG_H2 :$NG_NOCA :$NG_INSECURE :$NG_MTLS (h2 by ALPN) -> server-everything :$EVERY_PORT"

start_proxy() { # NAME NGINX_PORT YAML (more lines of the upstream, may be empty); sets SC (its port)
  local port pid rc
  port=$(free_port)
  printf 'listen: 127.0.0.1:%s\nadmin: null\nupstreams:\n  - name: tls\n    url: https://127.0.0.1:%s/mcp\n%s' \
    "$port" "$2" "$3" >"$DIR/$1.yaml"
  RUST_LOG=${RUST_LOG:-warn} "$SHADOWCAT" reverse --config "$DIR/$1.yaml" >"$DIR/$1.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { SC=$port; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  # Exited or never listened: most likely a proxy without https:// upstreams (exit 64).
  wait "$pid" 2>/dev/null && rc=0 || rc=$?
  echo "shadowcat ($1) did not start (exit $rc); config and log:"
  sed 's/^/    /' "$DIR/$1.yaml" "$DIR/$1.log"
  return 1
}

# The proxy's downstream side is plain http://, so the dns-rebinding-protection scenario reaches
# its Origin/Host checks (as in run.sh's first pass).
BASELINE="$DIR/baseline.yml"
grep -v 'dns-rebinding-protection' "$SHARED/conformance-baseline.server-everything.yml" >"$BASELINE"
check() { # NAME CMD...: one PASS/FAIL line, the log only on failure
  local name=$1; shift
  if "$@" >"$DIR/check.log" 2>&1; then pass "$name"; else flunk "$name"; tail -20 "$DIR/check.log" | sed 's/^/    /'; fi
}
# initialize, tools/list, tools/call, an SSE-streamed tool with progress, resources, the GET
# stream (TS SDK); SSE resumption with Last-Event-ID (curl); the Python SDK 1.x (progress) and 2.x.
clients() { # NAME URL
  echo "--- $1: SDK clients through the proxy to the https:// upstream"
  check "$1 resume-check" "$SHARED/resume-check.sh" "$2"
  check "$1 sdk-client (TypeScript SDK)" env NODE_PATH="$MCP_HARNESS/node_modules" node "$SHARED/sdk-client.cjs" "$2"
  for v in 1.30.0 2.3.0; do
    check "$1 python-sdk $v" "$MCP_HARNESS/py-mcp-$v/bin/python" "$ROOT/tests/harness/python_client.py" "$2"
  done
}
proto_mix() { awk '{print $1, "SNI=" $2, $3}' "$DIR/access-$1.log" | sort | uniq -c | sed 's/^ *//' | paste -sd ';'; }
only_proto() { # NAME PROTOCOL [SNI]: every request nginx logged for NAME used PROTOCOL (and SNI)
  local n other
  n=$(wc -l <"$DIR/access-$1.log")
  other=$(awk -v p="$2" -v s="${3:-}" '$1 != p || (s != "" && $2 != s)' "$DIR/access-$1.log" | wc -l)
  if ((n > 0 && other == 0)); then pass "$1: all $n requests to nginx were $2${3:+ with SNI $3}"
  else flunk "$1: want $2${3:+ and SNI $3} on all of $n requests to nginx, got: $(proto_mix "$1")"; fi
}
CA_YAML=$(printf '    tls:\n      ca_file: %s\n' "$CERTS/ca.crt")

if start_proxy default "$NG_DEFAULT" "$CA_YAML"; then
  clients default "http://127.0.0.1:$SC/mcp"
  n=$(wc -l <"$DIR/access-default.log")
  if ((n > 0)); then pass "default: $n requests reached nginx over TLS ($(proto_mix default))"
  else flunk "default: no request reached nginx"; fi
else
  flunk "default: proxy did not start (its 5 checks not run)"
fi

if start_proxy h1 "$NG_H1" "$(printf '    http2: never\n%s' "$CA_YAML")"; then
  echo "--- h1: run-all.sh (probe, resume, TS SDK client, conformance) through the proxy to the https:// upstream"
  "$SHARED/run-all.sh" "http://127.0.0.1:$SC/mcp" "$BASELINE" | tee "$DIR/h1.runall" || true
  grep -qx "4 passed, 0 failed" "$DIR/h1.runall" || fail=1
  only_proto h1 HTTP/1.1
else
  flunk "h1: proxy did not start (run-all.sh's 4 checks and 1 more not run)"
fi

if start_proxy h2 "$NG_H2" "$(printf '    http2: always\n%s\n      server_name: localhost\n' "$CA_YAML")"; then
  clients h2 "http://127.0.0.1:$SC/mcp"
  only_proto h2 HTTP/2.0 localhost
else
  flunk "h2: proxy did not start (its 5 checks not run)"
fi
init_code() { # URL: the HTTP status of an initialize through it
  curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -H 'content-type: application/json' \
    -H 'accept: application/json, text/event-stream' \
    -d '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"tls-upstream","version":"1"}}}' \
    "$1" || true
}
if start_proxy no-ca "$NG_NOCA" ""; then
  code=$(init_code "http://127.0.0.1:$SC/mcp")
  n=$(wc -l <"$DIR/access-no-ca.log")
  if [[ $code == 5* ]] && ((n == 0)); then pass "no-ca: an untrusted upstream certificate gives $code, nothing reaches server-everything"
  else flunk "no-ca: want a 5xx and no request at nginx, got HTTP $code and $n requests"; fi
else
  flunk "no-ca: proxy did not start"
fi

# insecure and mtls speak HTTP/1.1 (http2: never): they check TLS settings, default and h2
# above check the protocol.
if start_proxy insecure "$NG_INSECURE" "$(printf '    http2: never\n    tls:\n      insecure_skip_verify: true\n')"; then
  code=$(init_code "http://127.0.0.1:$SC/mcp")
  n=$(wc -l <"$DIR/access-insecure.log")
  if [[ $code == 200 ]] && ((n > 0)); then pass "insecure: insecure_skip_verify reaches the upstream without its CA (200)"
  else flunk "insecure: want 200 through insecure_skip_verify, got HTTP $code and $n requests at nginx"; fi
else
  flunk "insecure: proxy did not start"
fi

# mTLS: nginx requires a client certificate of the test CA on this block; the proxy presents
# tls.cert_file/key_file. Without them nginx answers 400 itself (no request reaches upstream).
MTLS_YAML=$(printf '    http2: never\n%s\n      cert_file: %s\n      key_file: %s\n' "$CA_YAML" "$CERTS/client.crt" "$CERTS/client.key")
if start_proxy mtls "$NG_MTLS" "$MTLS_YAML" && with=$(init_code "http://127.0.0.1:$SC/mcp") &&
  start_proxy mtls-none "$NG_MTLS" "$(printf '    http2: never\n%s' "$CA_YAML")"; then
  without=$(init_code "http://127.0.0.1:$SC/mcp")
  ok=$(awk '$5 == 200 && $6 == "SUCCESS"' "$DIR/access-mtls.log" | wc -l)
  if [[ $with == 200 && $without != 200 ]] && ((ok > 0)); then
    pass "mtls: with cert_file/key_file nginx verified the client (200); without them $without"
  else flunk "mtls: want 200 with a verified client certificate and no 200 without, got $with / $without ($(proto_mix mtls))"; fi
else
  flunk "mtls: a proxy did not start"
fi

if ((fail)); then
  for name in default h1 h2 no-ca insecure mtls mtls-none; do
    [[ -s $DIR/$name.log ]] && { echo "--- shadowcat ($name) log"; tail -30 "$DIR/$name.log"; }
  done
  echo "--- nginx error log"; tail -20 "$DIR/nginx-error.log"
  echo "tls-upstream: FAILED"
  exit 1
fi
echo "tls-upstream: all passed"
