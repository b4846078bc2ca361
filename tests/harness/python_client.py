#!/usr/bin/env python3
"""Real-client check with the official Python SDK (`mcp` 1.x or 2.x), against an MCP URL
(server-everything behind Shadowcat). mcp 2.x first probes MCP 2026-07-28 with
`server/discover` and falls back to `initialize` on the upstream's 400, so this also proves
that answer reaches the client unchanged. Exit 0 only if every step passes."""

import asyncio
import sys

import mcp

URL = sys.argv[1]


def text_of(result):
    return "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def check(cond, msg):
    if not cond:
        print(f"FAIL: {msg}")
        sys.exit(1)
    print(f"ok - {msg}")


async def run_v2():
    async with mcp.Client(URL) as client:
        tools = await client.list_tools()
        names = [t.name for t in tools.tools]
        check("echo" in names, f"tools/list has echo ({len(names)} tools)")
        res = await client.call_tool("echo", {"message": "hello via shadowcat"})
        check("hello via shadowcat" in text_of(res), "tools/call echo round-trips")
        res = await client.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 3})
        check("completed" in text_of(res).lower(), "long-running tool (SSE response) completes")


async def run_v1():
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(URL) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(bool(init.serverInfo.name), f"initialized with {init.serverInfo.name}")
            tools = await session.list_tools()
            names = [t.name for t in tools.tools]
            check("echo" in names, f"tools/list has echo ({len(names)} tools)")
            res = await session.call_tool("echo", {"message": "hello via shadowcat"})
            check("hello via shadowcat" in text_of(res), "tools/call echo round-trips")
            progress = []

            async def on_progress(p, total, message):
                progress.append(p)

            res = await session.call_tool(
                "trigger-long-running-operation",
                {"duration": 1, "steps": 3},
                progress_callback=on_progress,
            )
            check("completed" in text_of(res).lower(), "long-running tool (SSE response) completes")
            check(len(progress) == 3, f"progress notifications over SSE: {progress}")


async def main():
    version = getattr(mcp, "__version__", None)
    if hasattr(mcp, "Client"):
        print(f"mcp {version or '2.x'}: high-level Client")
        await run_v2()
    else:
        print(f"mcp {version or '1.x'}: ClientSession")
        await run_v1()
    print("PASS python-sdk")


asyncio.run(asyncio.wait_for(main(), 60))
