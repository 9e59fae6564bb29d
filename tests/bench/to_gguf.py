#!/usr/bin/env python3
"""Convert a BF16 DeepSeek-V3 safetensors checkpoint (as tests/bench/mkmodel.py writes it) to a
GGUF file that llama.cpp loads as its `deepseek2` architecture, with the `gguf` package.

llama.cpp's own convert_hf_to_gguf.py needs torch and transformers, which this machine does not
have (and does not need for anything else); this script makes the same file from the same
tensors: the same metadata keys, experts stacked into 3-D tensors, kv_b split into k_b
(transposed per head) and v_b for absorbed MLA, MLA expressed as one KV head, 2-D weights in
BF16 and 1-D ones in F32 (what `convert_hf_to_gguf.py --outtype bf16` writes), and the
tokenizer from tokenizer.json with DeepSeek-V3's pre-tokenizer.

    python tests/bench/to_gguf.py bench-out/model-bf16 bench-out/model-bf16.gguf
"""
import json
import os
import sys

import numpy as np
import gguf


def read_safetensors(path):
    """name -> (dtype string, shape, memmap of the raw bytes)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], info["shape"], raw[8 + n + a:8 + n + b])
    return out


def as_array(entry):
    dt, shape, buf = entry
    if dt == "BF16":
        return buf.view(np.uint16).reshape(shape)
    if dt == "F32":
        return buf.view(np.float32).reshape(shape)
    sys.exit(f"to_gguf: dtype {dt} not handled (convert a BF16 checkpoint)")


def bf16_to_f32(a):
    return (a.astype(np.uint32) << 16).view(np.float32)


def add_metadata(w, c):
    w.add_block_count(c["num_hidden_layers"])
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(c["hidden_size"])
    w.add_feed_forward_length(c["intermediate_size"])
    w.add_head_count(c["num_attention_heads"])
    w.add_head_count_kv(1)  # MLA as MQA, as llama.cpp's converter does
    w.add_rope_freq_base(c["rope_theta"])
    w.add_layer_norm_rms_eps(c["rms_norm_eps"])
    w.add_expert_used_count(c["num_experts_per_tok"])
    w.add_expert_group_count(c["n_group"])
    w.add_expert_group_used_count(c["topk_group"])
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_leading_dense_block_count(c["first_k_dense_replace"])
    w.add_vocab_size(c["vocab_size"])
    w.add_q_lora_rank(c["q_lora_rank"])
    w.add_kv_lora_rank(c["kv_lora_rank"])
    w.add_key_length(c["kv_lora_rank"] + c["qk_rope_head_dim"])
    w.add_value_length(c["kv_lora_rank"])
    w.add_key_length_mla(c["qk_nope_head_dim"] + c["qk_rope_head_dim"])
    w.add_value_length_mla(c["v_head_dim"])
    w.add_expert_feed_forward_length(c["moe_intermediate_size"])
    w.add_expert_count(c["n_routed_experts"])
    w.add_expert_shared_count(c["n_shared_experts"])
    w.add_expert_weights_scale(c["routed_scaling_factor"])
    if c.get("norm_topk_prob"):
        w.add_expert_weights_norm(True)
    w.add_rope_dimension_count(c["qk_rope_head_dim"])


def add_vocab(w, model_dir, vocab_size):
    with open(os.path.join(model_dir, "tokenizer.json")) as f:
        tj = json.load(f)
    id_to_tok = {i: t for t, i in tj["model"]["vocab"].items()}
    types = {}
    for a in tj.get("added_tokens", []):
        id_to_tok[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
    tokens, toktypes = [], []
    for i in range(vocab_size):
        tokens.append(id_to_tok.get(i, f"[PAD{i}]"))
        toktypes.append(types.get(i, gguf.TokenType.NORMAL if i in id_to_tok else gguf.TokenType.UNUSED))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("deepseek-v3")
    w.add_token_list(tokens)
    w.add_token_types(toktypes)
    gguf.SpecialVocab(model_dir, load_merges=True).add_to_gguf(w)


def add_tensors(w, st, c):
    nmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.DEEPSEEK2, c["num_hidden_layers"])
    H, dn, dv, E = c["num_attention_heads"], c["qk_nope_head_dim"], c["v_head_dim"], c["n_routed_experts"]

    def put(hf_name, arr):
        hf_name = hf_name.replace("e_score_correction_bias", "e_score_correction.bias")
        name = nmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            sys.exit(f"to_gguf: no GGUF name for {hf_name}")
        if arr.ndim == 1 or arr.dtype == np.float32:
            w.add_tensor(name, bf16_to_f32(arr) if arr.dtype == np.uint16 else np.ascontiguousarray(arr))
        else:
            w.add_tensor(name, np.ascontiguousarray(arr), raw_dtype=gguf.GGMLQuantizationType.BF16)

    for name in st:
        if ".mlp.experts." in name:
            continue
        arr = as_array(st[name])
        if name.endswith("kv_b_proj.weight"):
            kv_b = arr.reshape(H, dn + dv, arr.shape[-1])
            put(name.replace("kv_b_proj", "k_b_proj"), kv_b[:, :dn, :].transpose(0, 2, 1))
            put(name.replace("kv_b_proj", "v_b_proj"), kv_b[:, dn:, :])
        else:
            put(name, arr)
    for il in range(c["first_k_dense_replace"], c["num_hidden_layers"]):
        for part in ("down_proj", "gate_proj", "up_proj"):
            stacked = np.stack([as_array(st[f"model.layers.{il}.mlp.experts.{x}.{part}.weight"]) for x in range(E)])
            put(f"model.layers.{il}.mlp.experts.{part}.weight", stacked)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    model_dir, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(model_dir, "config.json")) as f:
        c = json.load(f)
    st = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    w = gguf.GGUFWriter(out, "deepseek2")
    add_metadata(w, c)
    add_vocab(w, model_dir, c["vocab_size"])
    add_tensors(w, st, c)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()
    print(f"to_gguf: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
