#!/usr/bin/env python3
"""Write a random-weight DeepSeek-V3-architecture GGUF in a Q4_K_M mix, for benchmarks.

The shapes are tests/bench/mkmodel.py's (1.2 B parameters, 0.27 B active per token: hidden
1024, 16 layers of which 15 MoE with 48 experts of width 512, 8 routed + 1 shared per token,
MLA with q_lora 384, kv_lora 256, 16 heads), in llama.cpp's deepseek2 layout with the split
attn_k_b / attn_v_b tensors and stacked experts. The mix is what llama-quantize's Q4_K_M
writes: Q4_K, with Q6_K for the output, attn_v_b and every other layer's ffn_down; rows whose
length is not a multiple of 256 fall back as llama.cpp's do (attn_q_b: 384 columns → Q5_0,
attn_k_b: 64 → Q8_0). K-type blocks are random valid blocks scaled to N(0, 1/cols)-like
spreads (the gguf package cannot quantise K types). Both seekd and llama.cpp load the same file.

    python3 tests/bench/mkgguf.py --out bench-out/model-q4km.gguf
"""
import argparse
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden"))
import make_gguf  # noqa: E402  (the test vocabulary and the random K-block writer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    D, L, H, QL, KVL, DN, DR, DV = 1024, 16, 16, 384, 256, 64, 32, 64
    I, F, E, K, S = 2816, 512, 48, 8, 1
    rng = np.random.default_rng(a.seed)
    w = gguf.GGUFWriter(a.out, "deepseek2")
    w.add_block_count(L)
    w.add_context_length(4096)
    w.add_embedding_length(D)
    w.add_feed_forward_length(I)
    w.add_head_count(H)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_leading_dense_block_count(1)
    w.add_vocab_size(make_gguf.VOCAB)
    w.add_q_lora_rank(QL)
    w.add_kv_lora_rank(KVL)
    w.add_key_length(KVL + DR)
    w.add_value_length(KVL)
    w.add_key_length_mla(DN + DR)
    w.add_value_length_mla(DV)
    w.add_expert_feed_forward_length(F)
    w.add_expert_count(E)
    w.add_expert_used_count(K)
    w.add_expert_shared_count(S)
    w.add_expert_weights_scale(2.5)
    w.add_expert_weights_norm(True)
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    w.add_expert_group_count(8)
    w.add_expert_group_used_count(4)
    w.add_rope_dimension_count(DR)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_K_M)
    make_gguf.add_vocab(w, "deepseek-v3", (make_gguf.TOKDIR / "template_v3.jinja").read_text(), 3278, 3279, True)

    def add(name, shape, qtype, std=None):
        std = std if std is not None else 1.0 / np.sqrt(shape[-1])
        if qtype == T.F32:
            w.add_tensor(name, (std * rng.standard_normal(shape)).astype(np.float32))
        elif qtype in make_gguf.K_FIELDS:
            w.add_tensor(name, make_gguf.k_blocks(rng, qtype, shape, std), raw_dtype=qtype)
        else:
            w.add_tensor(name, gguf.quants.quantize((std * rng.standard_normal(shape)).astype(np.float32), qtype), raw_dtype=qtype)

    def norm(name, n):
        w.add_tensor(name, np.ones(n, np.float32))

    add("token_embd.weight", (make_gguf.VOCAB, D), T.Q4_K, std=1.0)
    add("output.weight", (make_gguf.VOCAB, D), T.Q6_K)
    norm("output_norm.weight", D)
    for il in range(L):
        p = f"blk.{il}."
        down = T.Q6_K if il % 2 == 0 else T.Q4_K
        norm(p + "attn_norm.weight", D)
        norm(p + "ffn_norm.weight", D)
        norm(p + "attn_q_a_norm.weight", QL)
        norm(p + "attn_kv_a_norm.weight", KVL)
        add(p + "attn_q_a.weight", (QL, D), T.Q4_K)
        add(p + "attn_q_b.weight", (H * (DN + DR), QL), T.Q5_0)
        add(p + "attn_kv_a_mqa.weight", (KVL + DR, D), T.Q4_K)
        add(p + "attn_k_b.weight", (H, KVL, DN), T.Q8_0)
        add(p + "attn_v_b.weight", (H, DV, KVL), T.Q6_K)
        add(p + "attn_output.weight", (D, H * DV), T.Q4_K)
        if il == 0:
            add(p + "ffn_gate.weight", (I, D), T.Q4_K)
            add(p + "ffn_up.weight", (I, D), T.Q4_K)
            add(p + "ffn_down.weight", (D, I), down)
            continue
        add(p + "ffn_gate_inp.weight", (E, D), T.F32)
        w.add_tensor(p + "exp_probs_b.bias", np.zeros(E, np.float32))
        add(p + "ffn_gate_exps.weight", (E, F, D), T.Q4_K)
        add(p + "ffn_up_exps.weight", (E, F, D), T.Q4_K)
        add(p + "ffn_down_exps.weight", (E, D, F), down)
        add(p + "ffn_gate_shexp.weight", (F * S, D), T.Q4_K)
        add(p + "ffn_up_shexp.weight", (F * S, D), T.Q4_K)
        add(p + "ffn_down_shexp.weight", (D, F * S), down)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    print(f"mkgguf: wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
