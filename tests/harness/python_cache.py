#!/usr/bin/env python3
"""The result cache (issue 19) with the official Python SDK 2.3 on both sides: an MCPServer
with `cache_hints` (tools/list public, prompts/list private) behind Shadowcat, driven by
`mcp.Client` (its own response cache off, so every call reaches the proxy). An ASGI counter
in front of the server counts what reaches the upstream, by `Mcp-Method`.

Usage: python_cache.py SHADOWCAT_BINARY      Exit 0 only if every step passes."""

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter

import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import MCPServer
from mcp.shared._httpx_utils import create_mcp_http_client

SHADOWCAT = sys.argv[1]
TTL_MS = 1500
seen = Counter()


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}")
        sys.exit(1)
    print(f"ok - {msg}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def counted(app):
    async def wrapper(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = dict(scope["headers"])
            seen[headers.get(b"mcp-method", b"?").decode()] += 1
        await app(scope, receive, send)

    return wrapper


def start_server(port):
    server = MCPServer(
        "cache-upstream",
        cache_hints={
            "tools/list": CacheHint(ttl_ms=TTL_MS, scope="public"),
            "prompts/list": CacheHint(ttl_ms=60_000, scope="private"),
        },
    )

    @server.tool()
    def echo(message: str) -> str:
        return message

    @server.prompt()
    def greet(name: str) -> str:
        return f"hello {name}"

    app = counted(server.streamable_http_app(stateless_http=True))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    threading.Thread(target=uvicorn.Server(config).run, daemon=True).start()
    wait_port(port)


def client(url, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else None
    transport = streamable_http_client(url, http_client=create_mcp_http_client(headers=headers))
    return Client(transport, cache=None)


async def checks(url, admin):
    async with client(url) as c:
        first = await c.list_tools()
        check("echo" in [t.name for t in first.tools], "tools/list through the proxy")
        before = seen["tools/list"]
        second = await c.list_tools()
        check(seen["tools/list"] == before, "the second tools/list does not reach the upstream")
        check(second.ttl_ms is not None and 0 < second.ttl_ms <= TTL_MS, f"ttlMs lowered ({second.ttl_ms})")
        await asyncio.sleep(TTL_MS / 1000 + 0.2)
        await c.list_tools()
        check(seen["tools/list"] == before + 1, "an expired entry is fetched again")

    async with client(url, "alice") as alice, client(url, "bob") as bob, client(url) as nobody:
        await alice.list_prompts()
        base = seen["prompts/list"]
        await alice.list_prompts()
        check(seen["prompts/list"] == base, "alice's private prompts/list is served from the cache")
        await bob.list_prompts()
        check(seen["prompts/list"] == base + 1, "bob never gets alice's private entry")
        await nobody.list_prompts()
        await nobody.list_prompts()
        check(seen["prompts/list"] == base + 3, "without a principal a private result is not cached")

    body = '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"requestState":"r1"}}'
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
        "mcp-method": "tools/list",
    }
    base = seen["tools/list"]
    async with httpx2.AsyncClient() as h:
        for _ in range(2):
            await h.post(url, content=body, headers=headers)
    check(seen["tools/list"] == base + 2, "requests with requestState bypass the cache")
    metrics = urllib.request.urlopen(f"http://{admin}/metrics").read().decode()
    hits = [l for l in metrics.splitlines() if l.startswith("shadowcat_cache_requests_total")]
    print("\n".join(hits))
    check(any('result="bypass"' in l for l in hits), "bypasses are counted")


def main():
    up, port, admin_port = free_port(), free_port(), free_port()
    start_server(up)
    conf = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    conf.write(
        f"listen: 127.0.0.1:{port}\nadmin: 127.0.0.1:{admin_port}\n"
        f"upstreams:\n  - name: py\n    url: http://127.0.0.1:{up}/mcp\n"
    )
    conf.close()
    proxy = subprocess.Popen([SHADOWCAT, "reverse", "--config", conf.name], env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_port(port)
        asyncio.run(checks(f"http://127.0.0.1:{port}/mcp", f"127.0.0.1:{admin_port}"))
    finally:
        proxy.terminate()
        proxy.wait()
        os.unlink(conf.name)


if __name__ == "__main__":
    main()
