#!/usr/bin/env python3
"""The result cache for a server that sends no hints: server-everything behind a proxy with
`cache.rules: [{method: resources/list, ttl: 60s, scope: public}]`, driven by the Python SDK
2.3 client (its own cache off). The second resources/list is a hit; the
`notifications/resources/list_changed` that registering a session resource sends (on the
session's GET stream) drops the entry, so the next list goes upstream and shows the new
resource.

Usage: everything_cache.py PROXY_MCP_URL ADMIN_ADDR      Exit 0 only if every step passes."""

import asyncio
import sys
import urllib.request

import mcp

URL, ADMIN = sys.argv[1], sys.argv[2]


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}")
        sys.exit(1)
    print(f"ok - {msg}")


def counted(result):
    text = urllib.request.urlopen(f"http://{ADMIN}/metrics").read().decode()
    series = f'shadowcat_cache_requests_total{{method="resources/list",result="{result}"}} '
    return next((float(l.split()[-1]) for l in text.splitlines() if l.startswith(series)), 0.0)


async def main():
    changed = asyncio.Event()

    async def on_message(message):
        if getattr(getattr(message, "root", message), "method", None) == "notifications/resources/list_changed":
            changed.set()

    async with mcp.Client(URL, cache=None, message_handler=on_message) as c:
        first = await c.list_resources()
        await c.list_resources()
        check(counted("hit") == 1 and counted("miss") == 1, "the second resources/list is a hit")
        await c.call_tool(
            "gzip-file-as-resource",
            {"name": "cached.txt.gz", "data": "data:text/plain;base64,aGVsbG8=", "outputType": "resourceLink"},
        )
        await asyncio.wait_for(changed.wait(), 10)
        check(True, "resources/list_changed reached the client through the proxy")
        third = await c.list_resources()
        check(counted("miss") == 2, "the notification dropped the entry: the next list went upstream")
        names = [r.name for r in third.resources]
        check(len(third.resources) > len(first.resources), f"the new resource is listed ({names[-1]})")


asyncio.run(main())
