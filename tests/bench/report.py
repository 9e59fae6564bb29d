#!/usr/bin/env python3
"""Print the engine comparison table from tests/bench/engines.sh's results (Markdown).

    python tests/bench/report.py OUT_DIR THREADS

Figures: single-stream decode tok/s (1000 / mean TPOT), prompt tok/s on the 1,024-token prompt
(input tokens / TTFT), aggregate output tok/s at 1, 4, 16 and 64 concurrent streams; the memory
bandwidth of the same run, and batch-1 decode as a fraction of it: bytes of weights one decode
step reads (active parameters x 2 bytes, BF16; the embedding row and the KV cache excluded) per
second of TPOT, over the measured read and triad bandwidths.
"""
import json
import os
import sys

ENGINES = ["seekd", "llama.cpp"]


KEY = {"decode": lambda r: -r["mean_tpot_ms"], "prompt": lambda r: -r["mean_ttft_ms"]}


def load(res, engine, scenario):
    """The best of the repeated runs of a scenario (engines.sh runs each REPEATS times)."""
    runs = []
    for name in sorted(os.listdir(res)):
        if name.startswith(f"{engine}-{scenario}-") and name.endswith(".json"):
            with open(os.path.join(res, name)) as f:
                r = json.load(f)
            if r["completed"]:
                runs.append(r)
    key = KEY.get(scenario, lambda r: r["output_throughput"])
    return max(runs, key=key) if runs else None


def active_bytes(cfg):
    """Bytes of BF16 weights one decode token reads (router + k routed + shared experts)."""
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    nope, rope, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    q = (cfg["q_lora_rank"] * D + H * (nope + rope) * cfg["q_lora_rank"]) if cfg["q_lora_rank"] else H * (nope + rope) * D
    attn = q + (cfg["kv_lora_rank"] + rope) * D + H * (nope + dv) * cfg["kv_lora_rank"] + D * H * dv
    F, k, E = cfg["moe_intermediate_size"], cfg["num_experts_per_tok"], cfg["n_routed_experts"]
    moe = (k + cfg["n_shared_experts"]) * 3 * D * F + E * D
    dense = 3 * D * cfg["intermediate_size"]
    L, Ld = cfg["num_hidden_layers"], cfg["first_k_dense_replace"]
    return 2 * (L * attn + Ld * dense + (L - Ld) * moe + cfg["vocab_size"] * D)


def figures(res, engine):
    f = {}
    d = load(res, engine, "decode")
    if d and d["completed"]:
        f["decode"] = 1000.0 / d["mean_tpot_ms"]
        f["tpot_ms"] = d["mean_tpot_ms"]
    p = load(res, engine, "prompt")
    if p and p["completed"]:
        f["prompt"] = p["total_input_tokens"] / p["completed"] / (p["mean_ttft_ms"] / 1000.0)
    for c in (1, 4, 16, 64):
        r = load(res, engine, f"c{c}")
        if r and r["completed"]:
            f[f"c{c}"] = r["output_throughput"]
            f[f"c{c}_failed"] = r["failed"]
    return f


def cell(v):
    return "—" if v is None else f"{v:,.1f}"


def main():
    out, threads = sys.argv[1], sys.argv[2]
    res = os.path.join(out, "results")
    with open(os.path.join(out, "model-bf16", "config.json")) as fh:
        cfg = json.load(fh)
    with open(os.path.join(res, "membw.json")) as fh:
        bw = json.load(fh)
    figs = {e: figures(res, e) for e in ENGINES}
    rows = [("single-stream decode (tok/s)", "decode"), ("prompt, 1,024 tokens (tok/s)", "prompt"),
            ("aggregate output, 1 stream (tok/s)", "c1"), ("aggregate output, 4 streams (tok/s)", "c4"),
            ("aggregate output, 16 streams (tok/s)", "c16"), ("aggregate output, 64 streams (tok/s)", "c64")]
    print(f"\n### seekd vs llama.cpp — {threads} threads, BF16, same weights\n")
    print("| figure | seekd | llama.cpp | seekd / llama.cpp |")
    print("|---|---:|---:|---:|")
    for title, key in rows:
        a, b = figs["seekd"].get(key), figs["llama.cpp"].get(key)
        ratio = f"{a / b:.2f}x" if a and b else "—"
        print(f"| {title} | {cell(a)} | {cell(b)} | {ratio} |")
    nbytes = active_bytes(cfg)
    print(f"\nMemory bandwidth ({bw['threads']} threads): read {bw['read_gbps']:.1f} GB/s, "
          f"STREAM triad {bw['triad_gbps']:.1f} GB/s.")
    print(f"Weights read per decode token: {nbytes / 1e6:.0f} MB (BF16, active parameters).")
    for e in ENGINES:
        t = figs[e].get("tpot_ms")
        if t:
            gbps = nbytes / (t / 1000.0) / 1e9
            print(f"- {e}: batch-1 decode {gbps:.1f} GB/s = {100 * gbps / bw['read_gbps']:.0f}% of read, "
                  f"{100 * gbps / bw['triad_gbps']:.0f}% of triad bandwidth")
    failed = {e: sum(v for k, v in figs[e].items() if k.endswith("_failed")) for e in ENGINES}
    if any(failed.values()):
        print(f"\nFailed requests: {failed}")


if __name__ == "__main__":
    main()
