#!/usr/bin/env python3
"""The official Python SDK (`mcp` 1.x or 2.x) runs the same calls against a real stdio MCP server
twice: directly (the SDK starts the server over stdio) and through Shadowcat (the proxy runs the
same server as a stdio upstream). Results must be equal, call by call; the server's state is
reset before each run. mcp 2.x speaks 2026-07-28 to the proxy (server/discover, sessionless
requests served by the stdio upstream's shared pool) and the older revision over stdio, so this
also shows the pool's 2026-07-28 answers carry what the server said.

Usage: stdio_compare.py memory <proxy-url> <memory-file> <server.js>
       stdio_compare.py filesystem <proxy-url> <folder> <server.js>
Exit 0 only if every result is equal and the direct run did the work."""

import asyncio
import json
import os
import shutil
import sys

import mcp
from mcp import StdioServerParameters

KIND, URL, PLACE, SERVER_JS = sys.argv[1:5]


def reset():
    if KIND == "memory":
        if os.path.exists(PLACE):
            os.remove(PLACE)
        return
    shutil.rmtree(PLACE, ignore_errors=True)
    os.makedirs(os.path.join(PLACE, "sub"))
    with open(os.path.join(PLACE, "a.txt"), "w") as f:
        f.write("alpha\nbeta\n")
    with open(os.path.join(PLACE, "sub", "b.md"), "w") as f:
        f.write("# b\n")


CALLS = {
    "memory": [
        ("create_entities", {"entities": [
            {"name": "Ada", "entityType": "person", "observations": ["wrote the first program"]}]}),
        ("add_observations", {"observations": [{"entityName": "Ada", "contents": ["born 1815"]}]}),
        ("read_graph", {}),
        ("search_nodes", {"query": "1815"}),
    ],
    "filesystem": [
        ("list_directory", {"path": PLACE}),
        ("read_text_file", {"path": os.path.join(PLACE, "a.txt")}),
        ("write_file", {"path": os.path.join(PLACE, "c.txt"), "content": "gamma"}),
        ("directory_tree", {"path": PLACE}),
        ("read_text_file", {"path": "/etc/passwd"}),
    ],
}


def plain(result):
    """What a call returned, in a form to compare: content texts and the error flag."""
    texts = [getattr(c, "text", None) for c in result.content]
    return {"texts": texts, "isError": bool(getattr(result, "isError", getattr(result, "is_error", False)))}


async def calls(session):
    tools = await session.list_tools()
    out = [sorted(t.name for t in tools.tools)]
    for name, args in CALLS[KIND]:
        out.append(plain(await session.call_tool(name, args)))
    return out


def params():
    env = {"PATH": os.environ["PATH"]}
    args = [SERVER_JS]
    if KIND == "memory":
        env["MEMORY_FILE_PATH"] = PLACE
    else:
        args.append(PLACE)
    return StdioServerParameters(command="node", args=args, env=env)


async def run_v2(target):
    reset()
    async with mcp.Client(target) as client:
        return await calls(client)


async def run_v1(stdio):
    from mcp import ClientSession
    reset()
    if stdio:
        from mcp.client.stdio import stdio_client
        ctx = stdio_client(params())
    else:
        from mcp.client.streamable_http import streamablehttp_client
        ctx = streamablehttp_client(URL)
    async with ctx as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            return await calls(session)


async def main():
    v2 = hasattr(mcp, "Client")
    if v2:
        direct, proxied = await run_v2(params()), await run_v2(URL)
    else:
        direct, proxied = await run_v1(True), await run_v1(False)
    failed = 0
    for i, (a, b) in enumerate(zip(direct, proxied)):
        label = "tools/list" if i == 0 else "tools/call " + CALLS[KIND][i - 1][0]
        if a == b:
            print(f"ok - {KIND}: {label} equal through the proxy")
        else:
            failed += 1
            print(f"FAIL - {KIND}: {label} differs\n  direct: {json.dumps(a)[:400]}\n  proxied: {json.dumps(b)[:400]}")
    work = json.dumps(direct)
    sane = ("born 1815" in work) if KIND == "memory" else ("alpha\\nbeta" in work and direct[-1]["isError"])
    if failed or len(direct) != len(proxied) or not sane:
        print(f"FAIL: {failed} differ; the direct run did the work: {sane}")
        sys.exit(1)
    print(f"PASS stdio-compare {KIND} (python mcp {'2.x' if v2 else '1.x'})")


asyncio.run(asyncio.wait_for(main(), 90))
