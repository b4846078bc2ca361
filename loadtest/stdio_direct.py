#!/usr/bin/env python3
# Usage: python3 loadtest/stdio_direct.py <server-everything/dist/index.js> RATE DURATION SERVER_CPU
#   (run pinned: taskset -c 0 python3 ...; the server is pinned to SERVER_CPU)
# Direct stdio baseline: tools/call echo to server-everything over its own stdio, one at a time
# at RATE/s for DURATION s after a 3 s warm-up; prints p50/p95/p99 in ms.
import json, subprocess, sys, time
server, rate, duration, cpu = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
p = subprocess.Popen(["taskset", "-c", cpu, "node", server, "stdio"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
def call(msg):
    p.stdin.write((json.dumps(msg) + "\n").encode())
    if "id" in msg:
        while True:
            line = json.loads(p.stdout.readline())
            if line.get("id") == msg["id"]:
                return line
call({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "d", "version": "1"}}})
call({"jsonrpc": "2.0", "method": "notifications/initialized"})
lat = []
n = 0
for phase, secs in (("warm", 3), ("run", duration)):
    end = time.monotonic() + secs
    nxt = time.monotonic()
    while time.monotonic() < end:
        n += 1
        t = time.perf_counter()
        call({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "hi"}}})
        if phase == "run":
            lat.append((time.perf_counter() - t) * 1000)
        nxt += 1 / rate
        time.sleep(max(0, nxt - time.monotonic()))
p.kill()
lat.sort()
q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]
print(json.dumps({"n": len(lat), "p50": q(0.5), "p95": q(0.95), "p99": q(0.99)}))
