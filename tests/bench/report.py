#!/usr/bin/env python3
"""Print the engine comparison tables from tests/bench/engines.sh's results (Markdown).

    python tests/bench/report.py OUT_DIR THREADS [RESULTS_DIR]

One table per benched model (results/<model>/), with the machine's load average before and
after its runs.

Figures: single-stream decode tok/s (1000 / mean TPOT), prompt tok/s on the 1,024-token prompt
(input tokens / TTFT), aggregate output tok/s at 1, 4, 16 and 64 concurrent streams; the
server's CPU time per output token in the decode and 16-stream runs (prompt work included; the
ratio is llama.cpp's over seekd's, so above 1 means seekd needs less); the memory
bandwidth of the same run, and batch-1 decode as a fraction of it: bytes of weights one decode
step reads (active parameters x 2 bytes, BF16; the embedding row and the KV cache excluded) per
second of TPOT, over the measured read and triad bandwidths.

Also what each engine ran (results/<model>/kernels.txt), and for each figure the share of the
machine's CPU that other work took during the run it comes from (*.cpu.json): above
DISTURBED_SHARE the figure is marked, and so is its table.
"""
import json
import os
import sys

ENGINES = ["seekd", "llama.cpp"]
DISTURBED_SHARE = 0.10  # other work's CPU seconds over (wall seconds x cores) of a run


KEY = {"decode": lambda r: -r["mean_tpot_ms"], "prompt": lambda r: -r["mean_ttft_ms"]}


def other_share(path):
    """Other work's share of the machine during a run, or None when not recorded."""
    try:
        with open(path) as f:
            c = json.load(f)
    except (OSError, ValueError):
        return None
    return c["other_cpu_s"] / (c["wall_s"] * c["ncpu"]) if c["wall_s"] > 0 else None


def is_result(name, engine, scenario):
    return name.startswith(f"{engine}-{scenario}-") and name.endswith(".json") and \
        not name.endswith(".cpu.json")


def load(res, engine, scenario):
    """The best of the repeated runs of a scenario (engines.sh runs each REPEATS times), with
    the share of the machine other work took during it (key "_other")."""
    runs = []
    for name in sorted(os.listdir(res)):
        if is_result(name, engine, scenario):
            with open(os.path.join(res, name)) as f:
                r = json.load(f)
            if r["completed"]:
                r["_other"] = other_share(os.path.join(res, name[:-len(".json")] + ".cpu.json"))
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


def cpu_per_token(res, engine, scenario):
    """The fewest server CPU milliseconds per output token over the repeats of a scenario
    (prompt work included), from the .cpu files engines.sh writes next to the results."""
    best = None
    for name in sorted(os.listdir(res)):
        if not is_result(name, engine, scenario):
            continue
        cpu = os.path.join(res, name[:-5] + ".cpu")
        if not os.path.exists(cpu):
            continue
        with open(os.path.join(res, name)) as fh:
            r = json.load(fh)
        with open(cpu) as fh:
            ms = 1000.0 * float(fh.read()) / max(r["total_output_tokens"], 1)
        best = ms if best is None else min(best, ms)
    return best


def figures(res, engine):
    f = {}
    for s in ("decode", "c16"):
        v = cpu_per_token(res, engine, s)
        if v is not None:
            f[f"cpu_{s}"] = v
    d = load(res, engine, "decode")
    if d:
        f["decode"] = 1000.0 / d["mean_tpot_ms"]
        f["tpot_ms"] = d["mean_tpot_ms"]
        f["decode_other"] = d["_other"]
    p = load(res, engine, "prompt")
    if p:
        f["prompt"] = p["total_input_tokens"] / p["completed"] / (p["mean_ttft_ms"] / 1000.0)
        f["prompt_other"] = p["_other"]
    for c in (1, 4, 16, 64):
        r = load(res, engine, f"c{c}")
        if r:
            f[f"c{c}"] = r["output_throughput"]
            f[f"c{c}_failed"] = r["failed"]
            f[f"c{c}_other"] = r["_other"]
    return f


def cell(v):
    return "—" if v is None else f"{v:,.1f}"


def share(v):
    """Other work's share of a figure's run, marked when it disturbed it."""
    if v is None:
        return "?"
    return f"{100 * v:.0f}%" + (" disturbed" if v > DISTURBED_SHARE else "")


def read(path, default="?"):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


TITLES = {"bf16": "BF16 DeepSeek-V3-architecture checkpoint, same weights",
          "smollm2": "SmolLM2-135M-Instruct Q4_1 GGUF, the same file",
          "q4km": "DeepSeek-V3-architecture GGUF in a Q4_K_M mix, the same file"}
ROWS = [("single-stream decode (tok/s)", "decode"), ("prompt, 1,024 tokens (tok/s)", "prompt"),
        ("aggregate output, 1 stream (tok/s)", "c1"), ("aggregate output, 4 streams (tok/s)", "c4"),
        ("aggregate output, 16 streams (tok/s)", "c16"), ("aggregate output, 64 streams (tok/s)", "c64")]

CPU_ROWS = [("server CPU ms per output token, decode", "cpu_decode"),
            ("server CPU ms per output token, 16 streams", "cpu_c16")]


def table(res, name, threads):
    figs = {e: figures(res, e) for e in ENGINES}
    others = [figs[e].get(f"{k}_other") for e in ENGINES for _, k in ROWS]
    disturbed = any(o is not None and o > DISTURBED_SHARE for o in others)
    print(f"\n### seekd vs llama.cpp — {threads} threads, {TITLES.get(name, name)}"
          f"{' — DISTURBED (other work used the cores)' if disturbed else ''}\n")
    print("| figure | seekd | llama.cpp | seekd / llama.cpp | other work (seekd's run, llama.cpp's) |")
    print("|---|---:|---:|---:|---|")
    for title, key in ROWS:
        a, b = figs["seekd"].get(key), figs["llama.cpp"].get(key)
        if a is None and b is None:
            continue
        ratio = f"{a / b:.2f}x" if a and b else "—"
        oa, ob = figs["seekd"].get(f"{key}_other"), figs["llama.cpp"].get(f"{key}_other")
        print(f"| {title} | {cell(a)} | {cell(b)} | {ratio} | {share(oa)}, {share(ob)} |")
    for title, key in CPU_ROWS:
        a, b = figs["seekd"].get(key), figs["llama.cpp"].get(key)
        if a and b: # less is better: llama.cpp's over seekd's
            print(f"| {title} | {a:,.1f} | {b:,.1f} | {b / a:.2f}x | |")
    print(f"\nOther work: the share of the machine's {os.cpu_count()} cores that processes other than "
          f"the two servers and the load generator took during the run behind each figure (steal "
          f"included); above {100 * DISTURBED_SHARE:.0f}% the figure is disturbed — an engine whose "
          f"threads spin while they wait for each other suffers the more from it.")
    load = os.path.join(res, "load.txt")
    if os.path.exists(load):
        with open(load) as fh:
            print("\nLoad average (1, 5, 15 min) " + "; ".join(l.strip() for l in fh if l.strip()) + ".")
    print("\nWhat ran:\n")
    for line in read(os.path.join(res, "kernels.txt"), "").splitlines():
        print(f"- {line}")
    failed = {e: sum(v for k, v in figs[e].items() if k.endswith("_failed")) for e in ENGINES}
    if any(failed.values()):
        print(f"\nFailed requests: {failed}")
    return figs


def bandwidth(out, res_root, figs):
    """The BF16 model's batch-1 decode as a share of the measured memory bandwidth."""
    with open(os.path.join(out, "model-bf16", "config.json")) as fh:
        cfg = json.load(fh)
    with open(os.path.join(res_root, "membw.json")) as fh:
        bw = json.load(fh)
    nbytes = active_bytes(cfg)
    print(f"\nMemory bandwidth ({bw['threads']} threads): read {bw['read_gbps']:.1f} GB/s, "
          f"STREAM triad {bw['triad_gbps']:.1f} GB/s.")
    print(f"Weights read per decode token of the BF16 model: {nbytes / 1e6:.0f} MB (active parameters).")
    for e in ENGINES:
        t = figs[e].get("tpot_ms")
        if t:
            gbps = nbytes / (t / 1000.0) / 1e9
            print(f"- {e}: batch-1 decode {gbps:.1f} GB/s = {100 * gbps / bw['read_gbps']:.0f}% of read, "
                  f"{100 * gbps / bw['triad_gbps']:.0f}% of triad bandwidth")


def main():
    out, threads = sys.argv[1], sys.argv[2]
    res_root = sys.argv[3] if len(sys.argv) > 3 else os.path.join(out, "results")
    for name in ("bf16", "smollm2", "q4km"):
        res = os.path.join(res_root, name)
        if not os.path.isdir(res):
            continue
        figs = table(res, name, threads)
        if name == "bf16" and os.path.exists(os.path.join(res_root, "membw.json")):
            bandwidth(out, res_root, figs)


if __name__ == "__main__":
    main()
