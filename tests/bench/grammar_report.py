#!/usr/bin/env python3
"""The grammar benchmark's tables (markdown) from the results of tests/bench/grammar.sh.

    python3 tests/bench/grammar_report.py RESULTS_DIR
"""
import json
import os
import statistics
import sys

ENGINES = [("seekd", "grammar-seekd.jsonl"), ("llguidance", "grammar-llguidance.jsonl"),
           ("llama.cpp", "grammar-llamacpp.jsonl")]


def load(res):
    out = {}
    for name, f in ENGINES:
        path = os.path.join(res, f)
        if os.path.exists(path):
            out[name] = {r["case"]: r for r in map(json.loads, open(path)) if "case" in r}
    return out


def cell(r, key, fmt="{:.1f}"):
    if r is None or "error" in r:
        return "—" if r is None else "refused"
    if r.get("rejected_at", -1) >= 0:
        return f"rejects token {r['rejected_at']}"
    return fmt.format(r[key]) if key in r else "—"


def table(data, key, title, fmt="{:.1f}"):
    engines = [e for e, _ in ENGINES if e in data]
    cases = list(data["seekd"])
    print(f"\n{title}\n")
    print("| case | tokens | " + " | ".join(engines) + " |")
    print("|---|---:|" + "---:|" * len(engines))
    for c in cases:
        print(f"| {c} | {data['seekd'][c].get('tokens', '')} | " +
              " | ".join(cell(data[e].get(c), key, fmt) for e in engines) + " |")
    means = []
    for e in engines:
        v = [r[key] for r in data[e].values() if key in r and r.get("rejected_at", -1) < 0]
        means.append(fmt.format(statistics.mean(v)) if v else "—")
    print("| **mean** | | " + " | ".join(means) + " |")


def main(res):
    data = load(res)
    table(data, "mean_us", "Mask per decoding step, µs per sequence (warm: the schema seen before)", "{:.1f}")
    table(data, "p99_us", "Mask per step, 99th percentile, µs (warm)", "{:.0f}")
    table(data, "cold_mean_us", "Mask per step, µs (cold: the first request with the schema)", "{:.0f}")
    table(data, "compile_ms", "Compiling the schema, ms", "{:.1f}")
    e2e = os.path.join(res, "grammar-e2e.json")
    if os.path.exists(e2e):
        d = json.load(open(e2e))
        print("\nEnd to end, seekd: generated tokens/s (best of the alternated runs), the server's CPU "
              "time per generated token, and what the masks took in the constrained runs (server "
              "counters)\n")
        print("| concurrency | tok/s free | tok/s schema | tok/s cost | CPU ms/token free | "
              "CPU ms/token schema | CPU cost | mask CPU per token | mask CPU / step time | "
              "steps waiting for masks |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k, v in d.items():
            cpu = (f"{v['free_cpu_ms_per_tok']:.2f} | {v['schema_cpu_ms_per_tok']:.2f} | "
                   f"{v['cpu_cost_pct']:+.1f}%" if "cpu_cost_pct" in v else "— | — | —")
            print(f"| {k[1:]} | {v['free_tok_s']:.2f} | {v['schema_tok_s']:.2f} | {v['cost_pct']:+.1f}% | "
                  f"{cpu} | {v.get('mask_cpu_us', 0):.1f} µs | {v.get('mask_cpu_pct_of_steps', 0):.2f}% | "
                  f"{v.get('wait_pct_of_steps', 0):.2f}% |")

if __name__ == "__main__":
    main(*sys.argv[1:])
