#!/usr/bin/env python3
"""Turns a loadtest/run.sh output folder into one markdown table (median over rounds)."""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]
TARGETS = ["direct", "bare", "lean", "shadowcat", "nginx"]
# Pingora references (loadtest/run.sh): the smallest Pingora proxy, and Pingora's downstream
# session with a direct upstream exchange.
REFERENCES = ["bare", "lean"]
# SCENARIOS (env, space-separated): the scenarios of another script (loadtest/tls_upstream.sh).
SCENARIOS = os.environ.get("SCENARIOS", "json_rate json_max sse churn").split()


def metric(summary, name):
    m = summary.get("metrics", {}).get(name, {})
    return m.get("values", m)


runs = {}  # (scenario, target) -> list of dicts per round
for path in glob.glob(os.path.join(out, "*.*.*.json")):
    scenario, target, rnd, _ = os.path.basename(path).split(".")
    if scenario not in SCENARIOS:
        continue
    with open(path) as f:
        s = json.load(f)
    d = metric(s, "http_req_duration")
    reqs = metric(s, "http_reqs")
    checks = metric(s, "checks")
    runs.setdefault((scenario, target), {})[int(rnd)] = {
        "p50": d.get("p(50)", 0), "p95": d.get("p(95)", 0), "p99": d.get("p(99)", 0),
        "rps": reqs.get("rate", 0), "count": reqs.get("count", 0),
        "failed_checks": checks.get("fails", 0),
    }
resources = [json.loads(l) for l in open(os.path.join(out, "resources.jsonl"))]
for r in resources:
    if r["kind"] == "cpu":
        runs.get((r["scenario"], r["target"]), {}).get(r["round"], {}).update(cpu_s=r["cpu_s"], hwm_kb=r["hwm_kb"])

med = lambda xs: statistics.median(xs) if xs else 0


def col(scenario, target, key):
    return med([v.get(key, 0) for v in runs.get((scenario, target), {}).values()])


def added(scenario, target, key="p95"):
    rounds = runs.get((scenario, target), {})
    direct = runs.get((scenario, "direct"), {})
    return med([rounds[r][key] - direct[r][key] for r in rounds if r in direct])


print(f"Median of {len(runs.get(('json_rate', 'direct'), {}))} interleaved rounds. Latency in ms; CPU = seconds of the proxy's own processes during the run; RSS = peak resident MB.\n")
print("| scenario | target | p50 | p95 | p99 | req/s | CPU s | CPU µs/req | peak RSS MB | added p95 vs direct | failed checks |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for sc in SCENARIOS:
    for t in TARGETS:
        if (sc, t) not in runs:
            continue
        cpu = col(sc, t, "cpu_s")
        count = col(sc, t, "count")
        per = f"{cpu / count * 1e6:.0f}" if count and t != "direct" else "—"
        add = f"{added(sc, t):+.3f}" if t != "direct" else "—"
        rss = f"{col(sc, t, 'hwm_kb') / 1024:.0f}" if t != "direct" else "—"
        print(f"| {sc} | {t} | {col(sc, t, 'p50'):.3f} | {col(sc, t, 'p95'):.3f} | {col(sc, t, 'p99'):.3f} | {col(sc, t, 'rps'):.0f} | "
              f"{cpu if t != 'direct' else 0:.2f} | {per} | {rss} | {add} | {col(sc, t, 'failed_checks'):.0f} |")

print("\n**Shadowcat vs nginx** (added p95 latency ratio, lower is better; throughput ratio, higher is better):\n")
print("| scenario | added p95 shadowcat | added p95 nginx | ratio | req/s ratio | p95 overhead vs direct |")
print("|---|---|---|---|---|---|")
for sc in SCENARIOS:
    a_s, a_n = added(sc, "shadowcat"), added(sc, "nginx")
    ratio = f"{a_s / a_n:.2f}" if a_n > 0 else "n/a"
    rps = col(sc, "shadowcat", "rps") / col(sc, "nginx", "rps") if col(sc, "nginx", "rps") else 0
    direct_p95 = col(sc, "direct", "p95")
    over = f"{a_s / direct_p95 * 100:.1f}%" if direct_p95 else "n/a"
    print(f"| {sc} | {a_s:+.3f} ms | {a_n:+.3f} ms | {ratio} | {rps:.2f} | {over} |")

refs = [sc for sc in SCENARIOS if any((sc, t) in runs for t in REFERENCES)]
if refs:
    print("\n**Where the cost is** (bare = the smallest Pingora proxy; lean = Pingora's downstream session with a direct upstream exchange, no MCP logic; req/s and CPU relative to nginx):\n")
    print("| scenario | target | added p50 | added p95 | p95 overhead vs direct | req/s ratio | CPU µs/req ratio |")
    print("|---|---|---|---|---|---|---|")
    for sc in refs:
        direct_p95 = col(sc, "direct", "p95")
        n_rps = col(sc, "nginx", "rps")
        n_per = col(sc, "nginx", "cpu_s") / max(col(sc, "nginx", "count"), 1)
        for t in REFERENCES + ["shadowcat", "nginx"]:
            if (sc, t) not in runs:
                continue
            a95 = added(sc, t)
            over = f"{a95 / direct_p95 * 100:.1f}%" if direct_p95 else "n/a"
            rps = f"{col(sc, t, 'rps') / n_rps:.2f}" if n_rps else "n/a"
            per = col(sc, t, "cpu_s") / max(col(sc, t, "count"), 1)
            cpu = f"{per / n_per:.2f}" if n_per else "n/a"
            print(f"| {sc} | {t} | {added(sc, t, 'p50'):+.3f} ms | {a95:+.3f} ms | {over} | {rps} | {cpu} |")

streams = [r for r in resources if r["kind"] == "streams"]
if streams:
    print("\n**Idle SSE streams** (one event per stream per second; delivery delay = receive − send, µs, of the events sent after the warm-up in which the streams open; last open = when the last stream opened, s from the start; memory = RSS with the streams open minus idle):\n")
    print("| streams | target | opened | last open | events | p50 µs | p95 µs | p99 µs | added p99 vs direct µs | KB per stream |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    direct_p99 = {r["streams"]: r["result"]["p99_us"] for r in streams if r["target"] == "direct"}
    for r in streams:
        res = r["result"]
        per = f"{(r['busy_kb'] - r['idle_kb']) / max(res['streams'], 1):.1f}" if r["target"] != "direct" else "—"
        base = direct_p99.get(r["streams"])
        added = f"{res['p99_us'] - base:+d}" if r["target"] != "direct" and base is not None else "—"
        last = f"{res['last_open_ms'] / 1000:.1f}" if "last_open_ms" in res else "—"
        print(f"| {r['streams']} | {r['target']} | {res['streams']} | {last} | {res['events']} | {res['p50_us']} | {res['p95_us']} | {res['p99_us']} | {added} | {per} |")
