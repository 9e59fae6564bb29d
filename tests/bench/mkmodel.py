#!/usr/bin/env python3
"""Write a random-weight DeepSeek-V3-architecture checkpoint for benchmarks.

The output directory gets config.json, model.safetensors (Hugging Face tensor names, written by
hand: an 8-byte header length, the JSON header, then the tensors back to back) and the fixture
tokenizer (tests/fixtures/tokenizer/v3), or another (--tokenizer, with --vocab its size).
Weights are N(0, 1/cols); norms are 1. The text such a
model produces is noise; its speed is the speed of a real model of the same shapes.

Default shapes: about 1.2 B parameters in all, 0.27 B active per token (hidden 1024, 16 layers of
which 15 MoE with 48 experts, 8 routed + 1 shared per token).

    python3 tests/bench/mkmodel.py --out bench-out/model-bf16 [--dtype bf16|fp8]
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "fixtures", "tokenizer", "v3")


def config(a):
    return {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "attention_bias": False, "attention_dropout": 0.0, "bos_token_id": 0, "eos_token_id": 1,
        "first_k_dense_replace": a.dense_layers, "hidden_act": "silu", "hidden_size": a.hidden,
        "initializer_range": 0.02, "intermediate_size": a.intermediate,
        "kv_lora_rank": a.kv_lora, "max_position_embeddings": 4096,
        "moe_intermediate_size": a.moe_intermediate, "moe_layer_freq": 1, "n_group": a.groups,
        "n_routed_experts": a.experts, "n_shared_experts": 1, "norm_topk_prob": True,
        "num_attention_heads": a.heads, "num_experts_per_tok": a.top_k,
        "num_hidden_layers": a.layers, "num_key_value_heads": a.heads,
        "num_nextn_predict_layers": 0, "q_lora_rank": a.q_lora, "qk_nope_head_dim": a.nope,
        "qk_rope_head_dim": a.rope, "rms_norm_eps": 1e-6, "rope_scaling": None,
        "rope_theta": 10000, "routed_scaling_factor": 2.5, "scoring_func": "sigmoid",
        "tie_word_embeddings": False, "topk_group": a.topk_groups, "topk_method": "noaux_tc",
        "torch_dtype": "bfloat16", "use_cache": True, "v_head_dim": a.v_head, "vocab_size": a.vocab,
    }


def tensors(a):
    """(name, shape, kind): kind is 'proj' (quantised under fp8), 'bf16', 'norm' or 'f32'."""
    D, H, qk = a.hidden, a.heads, a.nope + a.rope
    out = [("model.embed_tokens.weight", (a.vocab, D), "bf16")]
    for i in range(a.layers):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (D,), "norm"),
                (p + "post_attention_layernorm.weight", (D,), "norm"),
                (p + "self_attn.q_a_proj.weight", (a.q_lora, D), "proj"),
                (p + "self_attn.q_a_layernorm.weight", (a.q_lora,), "norm"),
                (p + "self_attn.q_b_proj.weight", (H * qk, a.q_lora), "proj"),
                (p + "self_attn.kv_a_proj_with_mqa.weight", (a.kv_lora + a.rope, D), "proj"),
                (p + "self_attn.kv_a_layernorm.weight", (a.kv_lora,), "norm"),
                (p + "self_attn.kv_b_proj.weight", (H * (a.nope + a.v_head), a.kv_lora), "proj"),
                (p + "self_attn.o_proj.weight", (D, H * a.v_head), "proj")]
        if i < a.dense_layers:
            for n, s in (("gate", (a.intermediate, D)), ("up", (a.intermediate, D)), ("down", (D, a.intermediate))):
                out.append((p + f"mlp.{n}_proj.weight", s, "proj"))
            continue
        out += [(p + "mlp.gate.weight", (a.experts, D), "bf16"),
                (p + "mlp.gate.e_score_correction_bias", (a.experts,), "f32")]
        F = a.moe_intermediate
        for e in range(a.experts):
            for n, s in (("gate", (F, D)), ("up", (F, D)), ("down", (D, F))):
                out.append((p + f"mlp.experts.{e}.{n}_proj.weight", s, "proj"))
        for n, s in (("gate", (F, D)), ("up", (F, D)), ("down", (D, F))):
            out.append((p + f"mlp.shared_experts.{n}_proj.weight", s, "proj"))
    out += [("model.norm.weight", (D,), "norm"), ("lm_head.weight", (a.vocab, D), "bf16")]
    return out


def to_bf16(x):
    u = x.astype(np.float32).view(np.uint32)
    u = u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))
    return (u >> 16).astype(np.uint16)


def fp8_table():
    """Values of the e4m3fn codes 0..0x7e (the positive, non-NaN ones), ascending."""
    v = []
    for c in range(0x7F):
        e, m = c >> 3, c & 7
        v.append(m / 8 * 2.0 ** -6 if e == 0 else (1 + m / 8) * 2.0 ** (e - 7))
    return np.array(v, dtype=np.float32)


def to_fp8(x, table):
    """Nearest e4m3fn codes of x / scale per 128x128 block; returns (codes, scale_inv)."""
    rows, cols = x.shape
    br, bc = -(-rows // 128), -(-cols // 128)
    scale = np.empty((br, bc), np.float32)
    mids = (table[1:] + table[:-1]) / 2
    codes = np.empty(x.shape, np.uint8)
    for i in range(br):
        for j in range(bc):
            blk = x[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128]
            s = max(float(np.abs(blk).max()) / 448.0, 1e-12)
            scale[i, j] = s
            q = blk / s
            c = np.searchsorted(mids, np.abs(q)).astype(np.uint8)
            codes[i * 128:(i + 1) * 128, j * 128:(j + 1) * 128] = c | ((q < 0).astype(np.uint8) << 7)
    return codes, scale


def plan(a):
    """Every stored tensor: (name, safetensors dtype, shape, kind)."""
    out = []
    for name, shape, kind in tensors(a):
        if kind == "proj" and a.dtype == "fp8":
            out.append((name, "F8_E4M3", shape, "fp8"))
            out.append((name + "_scale_inv", "F32", (-(-shape[0] // 128), -(-shape[1] // 128)), "scale"))
        else:
            out.append((name, "F32" if kind == "f32" else "BF16", shape, kind))
    return out


def nbytes(dt, shape):
    return int(np.prod(shape)) * {"F32": 4, "BF16": 2, "F8_E4M3": 1}[dt]


def write(a):
    os.makedirs(a.out, exist_ok=True)
    items = plan(a)
    header, off = {}, 0
    for name, dt, shape, _ in items:
        n = nbytes(dt, shape)
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hdr = json.dumps(header, separators=(",", ":")).encode()
    hdr += b" " * (-len(hdr) % 8)
    rng = np.random.default_rng(a.seed)
    table = fp8_table()
    pending_scale = None
    total = sum(int(np.prod(s)) for _, s, _ in tensors(a))
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(len(hdr).to_bytes(8, "little") + hdr)
        for k, (name, dt, shape, kind) in enumerate(items):
            if kind == "scale":
                f.write(pending_scale.astype("<f4").tobytes())
                continue
            if kind == "norm":
                data = to_bf16(np.ones(shape, np.float32))
            elif kind == "f32":
                data = (rng.standard_normal(shape, dtype=np.float32) * 0.01).astype("<f4")
            else:
                x = rng.standard_normal(shape, dtype=np.float32) * np.float32(shape[-1] ** -0.5)
                if kind == "fp8":
                    data, pending_scale = to_fp8(x, table)
                else:
                    data = to_bf16(x)
            f.write(data.tobytes())
            if k % 200 == 0:
                print(f"\rmkmodel: {k}/{len(items)} tensors", end="", file=sys.stderr)
    print(f"\rmkmodel: {len(items)} tensors, {total / 1e9:.2f} B parameters, "
          f"{off / 2**30:.2f} GiB in {a.out}", file=sys.stderr)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(config(a), f, indent=2)
    for name in os.listdir(a.tokenizer):
        if name.startswith("tokenizer"):
            shutil.copy(os.path.join(a.tokenizer, name), a.out)


def active_params(a):
    D, H = a.hidden, a.heads
    attn = a.q_lora * D + H * (a.nope + a.rope) * a.q_lora + (a.kv_lora + a.rope) * D \
        + H * (a.nope + a.v_head) * a.kv_lora + D * H * a.v_head
    moe = (a.top_k + 1) * 3 * D * a.moe_intermediate + a.experts * D
    dense = 3 * D * a.intermediate
    return a.layers * attn + a.dense_layers * dense + (a.layers - a.dense_layers) * moe + a.vocab * D


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=["bf16", "fp8"], default="bf16")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--dense-layers", type=int, default=1)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--q-lora", type=int, default=384)
    ap.add_argument("--kv-lora", type=int, default=256)
    ap.add_argument("--nope", type=int, default=64)
    ap.add_argument("--rope", type=int, default=32)
    ap.add_argument("--v-head", type=int, default=64)
    ap.add_argument("--intermediate", type=int, default=2816)
    ap.add_argument("--moe-intermediate", type=int, default=512)
    ap.add_argument("--experts", type=int, default=48)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--groups", type=int, default=8)
    ap.add_argument("--topk-groups", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=4096, help="rows of embed_tokens and lm_head")
    ap.add_argument("--tokenizer", default=TOKENIZER, help="directory whose tokenizer files are copied")
    a = ap.parse_args()
    print(f"mkmodel: {active_params(a) / 1e9:.3f} B active parameters per token", file=sys.stderr)
    write(a)


if __name__ == "__main__":
    main()
