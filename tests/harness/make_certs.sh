#!/usr/bin/env bash
# Makes a throwaway test CA and a leaf for localhost / 127.0.0.1 signed by it (ECDSA P-256,
# valid 2 days) in DIR: ca.crt, ca.key, server.crt, server.key; and a client leaf signed by the
# same CA (client.crt, client.key: CN=shadowcat-client, clientAuth). Used by run.sh for the
# proxy's own TLS listener and by tls_upstream.sh for the TLS-terminating nginx in front of
# the upstream (and the client certificate the proxy presents to it).
# Usage: tests/harness/make_certs.sh DIR
set -euo pipefail
DIR=${1:?usage: make_certs.sh DIR}
mkdir -p "$DIR"
cd "$DIR"
{
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=harness-ca \
    -addext basicConstraints=critical,CA:TRUE -keyout ca.key -out ca.crt
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -keyout server.key -out server.csr
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >san.ext
  openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out server.crt
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=shadowcat-client \
    -keyout client.key -out client.csr
  printf 'extendedKeyUsage=clientAuth\n' >client.ext
  openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile client.ext -out client.crt
} 2>/dev/null || { echo "make_certs.sh: openssl failed in $DIR" >&2; exit 1; }
