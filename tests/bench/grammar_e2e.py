#!/usr/bin/env python3
"""End to end: decode throughput of a running seekd with and without a JSON schema, same prompts,
same concurrency. The schema asks for at least 30 records, far more than max_tokens allows, so
every constrained request runs exactly as long as a free one (which ignores EOS). Tokens/s on a
machine shared with other work move with that work; the server's own counters say what the
grammar cost in the constrained runs: the CPU time of the masks, and how long steps waited for
them after the forward pass, against the time spent in steps. Runs alternate between the two modes
REPEATS times and keep each mode's best (a shared machine slows both alike). Given the server's
process id, it also reads the server's CPU time (user + system, /proc) per generated token in
each mode: the steadiest figure on a busy machine, as other work takes wall time, not CPU time.

    python3 tests/bench/grammar_e2e.py BASE_URL RESULT.json [SERVER_PID]
"""
import os
import json
import sys
import threading
import time
import urllib.request

SCHEMA = {"type": "array", "minItems": 30, "maxItems": 40, "items": {
    "type": "object", "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 9999},
                                     "name": {"type": "string", "maxLength": 24},
                                     "ok": {"type": "boolean"}},
    "required": ["id", "name", "ok"], "additionalProperties": False}}
MAX_TOKENS = 96
REPEATS = 2


def post(base, body):
    req = urllib.request.Request(base + "/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def body(k, constrained):
    b = {"prompt": f"Records, batch {k}:", "max_tokens": MAX_TOKENS, "seed": k, "temperature": 1.0}
    if constrained:
        b["response_format"] = {"type": "json_schema", "json_schema": {"name": "records", "schema": SCHEMA}}
    else:
        b["ignore_eos"] = True
    return b


def metrics(base):
    with urllib.request.urlopen(base + "/metrics", timeout=60) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("seekd:") and " " in line and "{" not in line:
            k, v = line.split()
            out[k[6:]] = float(v)
    return out


def cpu_seconds(pid):
    """User + system CPU time of process pid, seconds (0 without a pid)."""
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(base, concurrency, n, constrained):
    """Generated tokens per second over n requests, concurrency at a time."""
    tokens, lock, it = [0], threading.Lock(), iter(range(n))

    def worker():
        for k in it:
            r = post(base, body(k, constrained))
            with lock:
                tokens[0] += r["usage"]["completion_tokens"]

    t0 = time.time()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tokens[0] / (time.time() - t0), tokens[0]


def main(base, out, pid=None):
    post(base, body(0, True))  # compile the schema and fill its first masks, as a first user would
    results = {}
    for conc, n in ((1, 2), (8, 8)):
        best = {False: 0.0, True: 0.0}
        spent = {"masks": 0.0, "cpu": 0.0, "wait": 0.0, "steps": 0.0}
        proc = {False: [0.0, 0], True: [0.0, 0]}  # server CPU seconds, tokens
        for _ in range(REPEATS):
            for constrained in (False, True):
                m0, c0 = metrics(base), cpu_seconds(pid)
                tps, tok = run(base, conc, n, constrained)
                m1, c1 = metrics(base), cpu_seconds(pid)
                proc[constrained][0] += c1 - c0
                proc[constrained][1] += tok
                best[constrained] = max(best[constrained], tps)
                if constrained:
                    for k, name in (("masks", "grammar_masks_total"), ("cpu", "grammar_mask_cpu_seconds_total"),
                                    ("wait", "grammar_wait_seconds_total"), ("steps", "engine_step_seconds_total")):
                        spent[k] += m1[name] - m0[name]
        results[f"c{conc}"] = {"free_tok_s": round(best[False], 2), "schema_tok_s": round(best[True], 2),
                               "cost_pct": round(100 * (1 - best[True] / best[False]), 2),
                               "mask_cpu_us": round(1e6 * spent["cpu"] / max(spent["masks"], 1), 1),
                               "mask_cpu_pct_of_steps": round(100 * spent["cpu"] / spent["steps"], 2),
                               "wait_pct_of_steps": round(100 * spent["wait"] / spent["steps"], 2)}
        if pid:
            free, schema = (1e3 * proc[c][0] / max(proc[c][1], 1) for c in (False, True))
            results[f"c{conc}"].update({"free_cpu_ms_per_tok": round(free, 2),
                                        "schema_cpu_ms_per_tok": round(schema, 2),
                                        "cpu_cost_pct": round(100 * (schema / free - 1), 2)})
        print(f"concurrency {conc}: {results[f'c{conc}']}", flush=True)
    json.dump(results, open(out, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
