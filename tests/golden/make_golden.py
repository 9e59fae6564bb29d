#!/usr/bin/env python3
"""Build the tiny DeepSeek reference fixtures under tests/fixtures/models/.

For each fixture this script

  1. draws random weights (numpy PCG64, fixed seed) named and shaped exactly like the
     tensors of the real Hugging Face hub checkpoints (per-expert tensors, FP8 block
     quantisation with ``weight_scale_inv`` where the real V3 release has it, router bias in
     F32, an MTP layer ``model.layers.{num_hidden_layers}.*`` for the FP8 fixture);
  2. writes config.json (hub style) and the safetensors file(s) with safetensors' own writer;
  3. reads the files back, dequantises FP8 (fp8 -> f32, times scale_inv, in f32), converts the
     per-expert tensors to the layout transformers keeps in memory, builds the transformers
     model in float32 with eager attention and loads the tensors with strict=True, then checks
     that every parameter/buffer equals the file-derived value and differs from its random
     initialisation;
  4. runs every prompt as one full forward pass (no cache) and stores float32 logits for every
     position in golden/<prompt>.npy, plus golden.json with tokens, versions and diagnostics.

Usage:  python tests/golden/make_golden.py [--only NAME] [--search-seed]
CI does not need this script (nor torch); the outputs are committed.
"""

import argparse
import json
import math
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import safetensors
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[2]
OUT_ROOT = REPO / "tests" / "fixtures" / "models"

VOCAB = 4096
PROMPT_LENGTHS = (1, 6, 37, 150)   # 150 > two KV blocks of 64 tokens
PROMPT_TOKEN_LIMIT = 4000          # prompt ids are drawn from [0, 4000)
FP8_BLOCK = 128
FP8_MAX = 448.0
MIN_REL_TOP2_GAP = 1e-3            # top1-top2 gap must be >= this * max|logit| of the prompt
MIN_ROUTE_MARGIN = 1e-5            # routing decisions must not be near-ties in f32 (~40x f32 noise)

FP8_QUANT_CONFIG = {
    "quant_method": "fp8",
    "fmt": "e4m3",
    "activation_scheme": "dynamic",
    "weight_block_size": [FP8_BLOCK, FP8_BLOCK],
}

# ---------------------------------------------------------------------------------------------
# Fixture definitions (config.json contents, hub style) and seeds.
# ---------------------------------------------------------------------------------------------

V3_COMMON = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "aux_loss_alpha": 0.001,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "ep_size": 1,
    "first_k_dense_replace": 1,
    "hidden_act": "silu",
    "initializer_range": 0.02,
    "model_type": "deepseek_v3",
    "moe_layer_freq": 1,
    "n_group": 4,
    "n_routed_experts": 16,
    "n_shared_experts": 1,
    "norm_topk_prob": True,
    "num_attention_heads": 4,
    "num_experts_per_tok": 4,
    "num_hidden_layers": 3,
    "num_key_value_heads": 4,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16,
    "rms_norm_eps": 1e-06,
    "routed_scaling_factor": 2.5,
    "scoring_func": "sigmoid",
    "seq_aux": True,
    "tie_word_embeddings": False,
    "topk_group": 2,
    "topk_method": "noaux_tc",
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "v_head_dim": 32,
    "vocab_size": VOCAB,
}

FIXTURES = OrderedDict()

# (a) V3, FP8 block-quantised, q_lora, YaRN, grouped routing, MTP layer.
#     hidden 160, intermediate 232, kv_a rows 176, q_b rows 192, kv_b cols 160: all > 128 and not
#     multiples of 128, so scale grids have partial edge blocks in both directions.
FIXTURES["v3-fp8"] = {
    "seed": 1050,
    "prompt_seed": 7001,
    "fp8": True,
    "mtp": True,
    "shards": 1,
    "config": dict(
        V3_COMMON,
        hidden_size=160,
        intermediate_size=232,
        moe_intermediate_size=32,
        q_lora_rank=96,
        kv_lora_rank=160,
        max_position_embeddings=256,
        num_nextn_predict_layers=1,
        quantization_config=FP8_QUANT_CONFIG,
        rope_scaling={
            "beta_fast": 32,
            "beta_slow": 1,
            "factor": 4,
            "mscale": 1.0,
            "mscale_all_dim": 1.0,
            "original_max_position_embeddings": 64,
            "type": "yarn",
        },
        rope_theta=10000,
    ),
}

# (b) V3 in BF16, plain RoPE (rope_scaling null, non-default theta), 3 shards + index.
FIXTURES["v3-bf16-sharded"] = {
    "seed": 2011,
    "prompt_seed": 7002,
    "fp8": False,
    "mtp": False,
    "shards": 3,
    "config": dict(
        V3_COMMON,
        hidden_size=64,
        intermediate_size=112,
        moe_intermediate_size=32,
        q_lora_rank=48,
        kv_lora_rank=96,
        max_position_embeddings=512,
        num_nextn_predict_layers=0,
        rope_scaling=None,
        rope_theta=50000,
    ),
}

# (c) V2-Lite style: no q_lora, softmax + greedy routing, 2 shared experts, YaRN mscale 0.707.
FIXTURES["v2-lite"] = {
    "seed": 3067,
    "prompt_seed": 7003,
    "fp8": False,
    "mtp": False,
    "shards": 1,
    "config": {
        "architectures": ["DeepseekV2ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "first_k_dense_replace": 1,
        "hidden_act": "silu",
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 112,
        "kv_lora_rank": 96,
        "max_position_embeddings": 512,
        "model_type": "deepseek_v2",
        "moe_intermediate_size": 24,
        "moe_layer_freq": 1,
        "n_group": 1,
        "n_routed_experts": 16,
        "n_shared_experts": 2,
        "norm_topk_prob": False,
        "num_attention_heads": 4,
        "num_experts_per_tok": 6,
        "num_hidden_layers": 3,
        "num_key_value_heads": 4,
        "q_lora_rank": None,
        "qk_nope_head_dim": 32,
        "qk_rope_head_dim": 16,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {
            "beta_fast": 32,
            "beta_slow": 1,
            "factor": 8,
            "mscale": 0.707,
            "mscale_all_dim": 0.707,
            "original_max_position_embeddings": 64,
            "type": "yarn",
        },
        "rope_theta": 10000,
        "routed_scaling_factor": 1.0,
        "scoring_func": "softmax",
        "seq_aux": True,
        "tie_word_embeddings": False,
        "topk_group": 1,
        "topk_method": "greedy",
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "v_head_dim": 32,
        "vocab_size": VOCAB,
    },
}

# ---------------------------------------------------------------------------------------------
# Random weights with hub names.  kind: "proj" (2-D projection inside a decoder layer; FP8 in the
# FP8 fixture), "norm", "embed", "head", "router", "bias" (F32), "eh" (MTP eh_proj, BF16).
# ---------------------------------------------------------------------------------------------


def _normal(rng, shape, std):
    return (rng.standard_normal(shape) * std).astype(np.float32)


def _proj(rng, out_f, in_f, gain=1.0):
    return _normal(rng, (out_f, in_f), gain / math.sqrt(in_f))


def _norm(rng, n):
    return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)


def make_layer(rng, cfg, prefix, moe, tensors):
    D = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    dc = cfg["kv_lora_rank"]
    dq = cfg["q_lora_rank"]

    def put(name, arr, kind):
        tensors[prefix + name] = (arr, kind)

    put("input_layernorm.weight", _norm(rng, D), "norm")
    if dq is None:
        put("self_attn.q_proj.weight", _proj(rng, H * (dn + dr), D), "proj")
    else:
        put("self_attn.q_a_proj.weight", _proj(rng, dq, D), "proj")
        put("self_attn.q_a_layernorm.weight", _norm(rng, dq), "norm")
        put("self_attn.q_b_proj.weight", _proj(rng, H * (dn + dr), dq), "proj")
    put("self_attn.kv_a_proj_with_mqa.weight", _proj(rng, dc + dr, D), "proj")
    put("self_attn.kv_a_layernorm.weight", _norm(rng, dc), "norm")
    put("self_attn.kv_b_proj.weight", _proj(rng, H * (dn + dv), dc), "proj")
    put("self_attn.o_proj.weight", _proj(rng, D, H * dv), "proj")
    put("post_attention_layernorm.weight", _norm(rng, D), "norm")
    if not moe:
        inter = cfg["intermediate_size"]
        put("mlp.gate_proj.weight", _proj(rng, inter, D), "proj")
        put("mlp.up_proj.weight", _proj(rng, inter, D), "proj")
        put("mlp.down_proj.weight", _proj(rng, D, inter), "proj")
        return
    E, F = cfg["n_routed_experts"], cfg["moe_intermediate_size"]
    put("mlp.gate.weight", _proj(rng, E, D, gain=1.5), "router")
    if cfg["model_type"] == "deepseek_v3":
        # Random correction bias, F32, comparable to the spread of the sigmoid scores so that it
        # changes the selection for many tokens (measured and reported in golden.json).
        put("mlp.gate.e_score_correction_bias", _normal(rng, (E,), 0.1), "bias")
    for e in range(E):
        put(f"mlp.experts.{e}.gate_proj.weight", _proj(rng, F, D), "proj")
        put(f"mlp.experts.{e}.up_proj.weight", _proj(rng, F, D), "proj")
        put(f"mlp.experts.{e}.down_proj.weight", _proj(rng, D, F), "proj")
    Fs = F * cfg["n_shared_experts"]
    put("mlp.shared_experts.gate_proj.weight", _proj(rng, Fs, D), "proj")
    put("mlp.shared_experts.up_proj.weight", _proj(rng, Fs, D), "proj")
    put("mlp.shared_experts.down_proj.weight", _proj(rng, D, Fs), "proj")


def make_hub_tensors(fx, seed):
    """Ordered dict hub_name -> (float32 numpy array, kind), in hub order."""
    cfg = fx["config"]
    rng = np.random.Generator(np.random.PCG64(seed))
    D = cfg["hidden_size"]
    t = OrderedDict()
    embed = _normal(rng, (VOCAB, D), 1.0)
    t["model.embed_tokens.weight"] = (embed, "embed")
    L = cfg["num_hidden_layers"]
    for i in range(L):
        make_layer(rng, cfg, f"model.layers.{i}.", i >= cfg["first_k_dense_replace"], t)
    t["model.norm.weight"] = (_norm(rng, D), "norm")
    head = _proj(rng, VOCAB, D, gain=3.0)
    t["lm_head.weight"] = (head, "head")
    if fx["mtp"]:
        # MTP module = layer num_hidden_layers: a full MoE decoder layer plus the extra tensors.
        p = f"model.layers.{L}."
        make_layer(rng, cfg, p, True, t)
        t[p + "embed_tokens.weight"] = (embed.copy(), "embed")
        t[p + "enorm.weight"] = (_norm(rng, D), "norm")
        t[p + "hnorm.weight"] = (_norm(rng, D), "norm")
        t[p + "eh_proj.weight"] = (_proj(rng, D, 2 * D), "eh")
        t[p + "shared_head.norm.weight"] = (_norm(rng, D), "norm")
        t[p + "shared_head.head.weight"] = (head.copy(), "head")
    return t


# ---------------------------------------------------------------------------------------------
# FP8 block quantisation (section 2.2 rule) and dequantisation.
# ---------------------------------------------------------------------------------------------


def fp8_quantize(w):
    """w: float32 torch [R, C] -> (float8_e4m3fn [R, C], float32 scale_inv [ceil(R/128), ceil(C/128)])."""
    R, C = w.shape
    br, bc = -(-R // FP8_BLOCK), -(-C // FP8_BLOCK)
    padded = torch.zeros(br * FP8_BLOCK, bc * FP8_BLOCK, dtype=torch.float32)
    padded[:R, :C] = w
    blocks = padded.view(br, FP8_BLOCK, bc, FP8_BLOCK)
    amax = blocks.abs().amax(dim=(1, 3))
    assert bool((amax > 0).all())
    scale = (amax / FP8_MAX).to(torch.float32)
    q = (blocks / scale[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX)
    q = q.reshape(br * FP8_BLOCK, bc * FP8_BLOCK)[:R, :C].contiguous().to(torch.float8_e4m3fn)
    assert not bool(q.float().isnan().any())
    return q, scale.contiguous()


def fp8_dequantize(q, scale_inv):
    R, C = q.shape
    assert scale_inv.dtype == torch.float32
    assert tuple(scale_inv.shape) == (-(-R // FP8_BLOCK), -(-C // FP8_BLOCK)), (q.shape, scale_inv.shape)
    s = scale_inv.repeat_interleave(FP8_BLOCK, 0).repeat_interleave(FP8_BLOCK, 1)[:R, :C]
    return q.to(torch.float32) * s   # f32 multiply, no bf16 rounding


# ---------------------------------------------------------------------------------------------
# Writing.
# ---------------------------------------------------------------------------------------------


def to_file_tensors(fx, hub):
    """hub float32 arrays -> OrderedDict of torch tensors in the dtypes of the real checkpoints."""
    out = OrderedDict()
    for name, (arr, kind) in hub.items():
        w = torch.from_numpy(arr)
        if kind == "proj" and fx["fp8"]:
            q, s = fp8_quantize(w)
            out[name] = q
            out[name + "_scale_inv"] = s
        elif kind == "bias":
            out[name] = w.to(torch.float32).contiguous()
        else:
            out[name] = w.to(torch.bfloat16).contiguous()
    return out


def write_fixture(fx, fdir, file_tensors):
    if fdir.exists():
        shutil.rmtree(fdir)
    (fdir / "golden").mkdir(parents=True)
    with open(fdir / "config.json", "w") as f:
        json.dump(fx["config"], f, indent=2, sort_keys=True)
        f.write("\n")
    meta = {"format": "pt"}
    n = fx["shards"]
    if n == 1:
        save_file(dict(file_tensors), str(fdir / "model.safetensors"), metadata=meta)
        return ["model.safetensors"]
    # Split in hub order by cumulative byte size (a layer may straddle two shards, as on the hub).
    names = list(file_tensors)
    sizes = [file_tensors[k].numel() * file_tensors[k].element_size() for k in names]
    total = sum(sizes)
    shard_of, acc = [], 0
    for sz in sizes:
        shard_of.append(min(n - 1, int(acc * n // total)))
        acc += sz
    assert sorted(set(shard_of)) == list(range(n))
    files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    weight_map = {}
    for i, fname in enumerate(files):
        part = {k: file_tensors[k] for k, s in zip(names, shard_of) if s == i}
        save_file(part, str(fdir / fname), metadata=meta)
        for k in part:
            weight_map[k] = fname
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    with open(fdir / "model.safetensors.index.json", "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    return files


# ---------------------------------------------------------------------------------------------
# Reading back and converting to transformers' in-memory layout.
# ---------------------------------------------------------------------------------------------


def read_files(fdir):
    idx = fdir / "model.safetensors.index.json"
    if idx.exists():
        wm = json.loads(idx.read_text())["weight_map"]
        files = sorted(set(wm.values()))
    else:
        wm, files = None, ["model.safetensors"]
    tensors, dtypes = OrderedDict(), {}
    for fname in files:
        with safe_open(str(fdir / fname), framework="pt") as f:
            assert f.metadata() == {"format": "pt"}
            for k in f.keys():
                assert k not in tensors, k
                if wm is not None:
                    assert wm[k] == fname, k
                tensors[k] = f.get_tensor(k)
    if wm is not None:
        assert set(wm) == set(tensors)
    # dtype strings as stored in the safetensors headers
    for fname in files:
        raw = (fdir / fname).read_bytes()
        hlen = int.from_bytes(raw[:8], "little")
        hdr = json.loads(raw[8:8 + hlen])
        for k, v in hdr.items():
            if k != "__metadata__":
                dtypes[k] = v["dtype"]
    return tensors, dtypes


def check_file_dtypes(fx, dtypes):
    """Assert the dtypes of section 2 of the reference (FP8 + F32 scale, BF16, F32 bias)."""
    cfg = fx["config"]
    L = cfg["num_hidden_layers"]
    for k, dt in dtypes.items():
        if k.endswith("_scale_inv"):
            want = "F32"
        elif k.endswith("e_score_correction_bias"):
            want = "F32"
        elif fx["fp8"] and is_fp8_name(k, L):
            want = "F8_E4M3"
        else:
            want = "BF16"
        assert dt == want, (k, dt, want)
        if fx["fp8"] and is_fp8_name(k, L):
            assert k + "_scale_inv" in dtypes, k


def is_fp8_name(k, L):
    if not k.startswith("model.layers.") or not k.endswith(".weight"):
        return False
    rest = k.split(".", 3)[3]
    if rest.startswith(("eh_proj", "shared_head", "embed_tokens", "enorm", "hnorm")):
        return False
    if "layernorm" in rest or rest == "mlp.gate.weight":
        return False
    return True


def hub_to_hf(fx, file_tensors):
    """File tensors -> (hf_state_dict float32, list of hub names ignored by HF)."""
    cfg = fx["config"]
    L = cfg["num_hidden_layers"]
    consumed = set()
    deq = OrderedDict()
    for k, v in file_tensors.items():
        if k.endswith("_scale_inv"):
            continue
        if v.dtype == torch.float8_e4m3fn:
            deq[k] = fp8_dequantize(v, file_tensors[k + "_scale_inv"])
            consumed.add(k + "_scale_inv")
        else:
            deq[k] = v.to(torch.float32)
    hf = OrderedDict()
    ignored = []
    experts = {}
    for k, v in deq.items():
        parts = k.split(".")
        if k.startswith("model.layers.") and int(parts[2]) >= L:
            ignored.append(k)
            continue
        consumed.add(k)
        if ".mlp.experts." in k:
            layer = int(parts[2])
            e = int(parts[5])
            which = parts[6]
            experts.setdefault(layer, {})[(e, which)] = v
            continue
        hf[k] = v
    E = cfg["n_routed_experts"]
    for layer, ex in sorted(experts.items()):
        assert len(ex) == 3 * E
        p = f"model.layers.{layer}.mlp.experts."
        hf[p + "gate_up_proj"] = torch.stack(
            [torch.cat([ex[(e, "gate_proj")], ex[(e, "up_proj")]], dim=0) for e in range(E)])
        hf[p + "down_proj"] = torch.stack([ex[(e, "down_proj")] for e in range(E)])
    consumed.update(ignored)
    # every tensor of the file went into the model, except the MTP layer that HF does not build
    assert consumed == set(file_tensors), set(file_tensors) - consumed
    return hf, ignored


# ---------------------------------------------------------------------------------------------
# Reference model.
# ---------------------------------------------------------------------------------------------


def build_model(fdir):
    config = transformers.AutoConfig.from_pretrained(str(fdir))
    if hasattr(config, "quantization_config"):
        # The reference runs on the dequantised f32 values: plain nn.Linear, no FP8 kernels.
        del config.quantization_config
    cls = {"deepseek_v3": transformers.DeepseekV3ForCausalLM,
           "deepseek_v2": transformers.DeepseekV2ForCausalLM}[config.model_type]
    model = cls._from_config(config, dtype=torch.float32, attn_implementation="eager",
                             experts_implementation="eager")
    model.eval()
    return model


def load_and_verify(model, hf_sd):
    init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    missing = set(init) ^ set(hf_sd)
    assert not missing, missing
    for k, v in hf_sd.items():
        assert tuple(init[k].shape) == tuple(v.shape), (k, init[k].shape, v.shape)
    model.load_state_dict(hf_sd, strict=True)
    after = model.state_dict()
    for k, v in hf_sd.items():
        got = after[k]
        assert got.dtype == torch.float32, (k, got.dtype)
        assert torch.equal(got, v), f"{k} differs from the file-derived tensor"
        assert not torch.equal(init[k], v), f"{k} still equals its random init"
    # Parameters that are shared objects would make one of the checks above vacuous.
    ptrs = [p.data_ptr() for p in model.parameters()]
    assert len(ptrs) == len(set(ptrs)), "tied/shared parameters"
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    # Every named parameter and persistent buffer is in the state dict we loaded.
    names = {n for n, _ in model.named_parameters()}
    assert names <= set(hf_sd), names - set(hf_sd)
    return len(hf_sd)


def expected_rope(cfg):
    """Section 3.5 formulas (computed like HF, in f32) -> (inv_freq, cos/sin factor, softmax scale)."""
    dim = cfg["qk_rope_head_dim"]
    base = float(cfg["rope_theta"])
    pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)
    qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    s = qk ** -0.5
    rs = cfg.get("rope_scaling")
    if not rs:
        return 1.0 / pos_freqs, 1.0, s, None
    factor = float(rs["factor"])
    L0 = rs["original_max_position_embeddings"]

    def corr(r):
        return dim * math.log(L0 / (2 * math.pi * r)) / (2 * math.log(base))

    low = max(math.floor(corr(rs["beta_fast"])), 0)
    high = min(math.ceil(corr(rs["beta_slow"])), dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
    w_ext = 1 - ramp
    inv = (1.0 / (factor * pos_freqs)) * (1 - w_ext) + (1.0 / pos_freqs) * w_ext

    def m(sc, ms):
        return 1.0 if sc <= 1 else 0.1 * ms * math.log(sc) + 1.0

    att = m(factor, rs["mscale"]) / m(factor, rs["mscale_all_dim"])
    mm = m(factor, rs["mscale_all_dim"])
    return inv, att, s * mm * mm, {"low": low, "high": high, "ramp": ramp.tolist()}


def check_rope(model, cfg):
    inv, att, scale, ramp = expected_rope(cfg)
    rot = model.model.rotary_emb
    got_inv = rot.inv_freq.detach().to(torch.float32)
    assert torch.allclose(got_inv, inv, rtol=1e-6, atol=0), (got_inv, inv)
    assert abs(rot.attention_scaling - att) < 1e-12, (rot.attention_scaling, att)
    for layer in model.model.layers:
        assert abs(layer.self_attn.scaling - scale) < 1e-12, (layer.self_attn.scaling, scale)
    if cfg.get("rope_scaling"):
        L0 = cfg["rope_scaling"]["original_max_position_embeddings"]
        assert max(PROMPT_LENGTHS) - 1 > L0, "prompt positions must exceed original_max_position_embeddings"
        assert any(0 < r < 1 for r in ramp["ramp"]), "YaRN ramp is trivial"
    return {
        "rope_inv_freq": [float(x) for x in got_inv],
        "rope_cos_sin_factor": float(rot.attention_scaling),
        "softmax_scale": float(model.model.layers[0].self_attn.scaling),
        "yarn_ramp": ramp,
        "hf_rope_parameters": {k: v for k, v in dict(model.config.rope_parameters).items()},
    }


# ---------------------------------------------------------------------------------------------
# Routing diagnostics (recomputed from the router inputs captured during the reference run).
# ---------------------------------------------------------------------------------------------


def routing_stats(cfg, gate, x):
    """gate: router module; x: [T, D] f32 router input."""
    W = gate.weight.detach().to(torch.float32)
    logits = x.to(torch.float32) @ W.t()
    E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    st = {}
    if cfg["model_type"] == "deepseek_v3":
        s = logits.sigmoid()
        b = s + gate.e_score_correction_bias.detach()
        G, kg = cfg["n_group"], cfg["topk_group"]
        gs = b.view(-1, G, E // G).topk(2, dim=-1)[0].sum(-1)
        gsorted = gs.sort(dim=-1, descending=True)[0]
        group_margin = (gsorted[:, kg - 1] - gsorted[:, kg]).min().item()
        gidx = gs.topk(kg, dim=-1)[1]
        gmask = torch.zeros_like(gs).scatter_(1, gidx, 1).bool()
        emask = gmask.unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
        b_inf = b.masked_fill(~emask, float("-inf"))
        b_zero = b.masked_fill(~emask, 0.0)
        sel_inf = b_inf.topk(k, dim=-1)[1].sort(-1)[0]
        sel_zero = b_zero.topk(k, dim=-1)[1].sort(-1)[0]
        # selection without the bias (plain top-k of s within the same group logic)
        gs_nb = s.view(-1, G, E // G).topk(2, dim=-1)[0].sum(-1)
        gidx_nb = gs_nb.topk(kg, dim=-1)[1]
        gm_nb = torch.zeros_like(gs_nb).scatter_(1, gidx_nb, 1).bool()
        em_nb = gm_nb.unsqueeze(-1).expand(-1, G, E // G).reshape(-1, E)
        sel_nb = s.masked_fill(~em_nb, float("-inf")).topk(k, dim=-1)[1].sort(-1)[0]
        bs = b_inf.sort(dim=-1, descending=True)[0]
        st["group_margin_min"] = group_margin
        st["expert_margin_min"] = (bs[:, k - 1] - bs[:, k]).min().item()
        st["tokens_where_bias_changes_selection"] = int((sel_inf != sel_nb).any(-1).sum())
        st["tokens_where_mask_0_vs_neginf_differ"] = int((sel_inf != sel_zero).any(-1).sum())
    else:
        s = logits.softmax(dim=-1)
        ss = s.sort(dim=-1, descending=True)[0]
        st["expert_margin_min"] = (ss[:, k - 1] - ss[:, k]).min().item()
    st["tokens"] = int(x.shape[0])
    return st


# ---------------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------------


def prompts_for(fx):
    rng = np.random.Generator(np.random.PCG64(fx["prompt_seed"]))
    return [(f"p{n}", [int(t) for t in rng.integers(0, PROMPT_TOKEN_LIMIT, size=n)]) for n in PROMPT_LENGTHS]


def run_reference(model, cfg, prompts):
    router_inputs = {}
    hooks = []
    for li, layer in enumerate(model.model.layers):
        if hasattr(layer.mlp, "gate"):
            def hook(mod, args, li=li):
                router_inputs.setdefault(li, []).append(args[0].detach().reshape(-1, args[0].shape[-1]).clone())
            hooks.append(layer.mlp.gate.register_forward_pre_hook(hook))
    results = []
    with torch.no_grad():
        for name, toks in prompts:
            ids = torch.tensor([toks], dtype=torch.long)
            out = model(input_ids=ids, use_cache=False)
            logits = out.logits[0].to(torch.float32).contiguous()
            assert tuple(logits.shape) == (len(toks), VOCAB)
            assert bool(torch.isfinite(logits).all())
            results.append((name, toks, logits))
    for h in hooks:
        h.remove()
    route = {}
    for li, xs in sorted(router_inputs.items()):
        route[f"layer{li}"] = routing_stats(cfg, model.model.layers[li].mlp.gate, torch.cat(xs))
    return results, route


def logit_stats(results):
    per = []
    for name, toks, lg in results:
        top2 = lg.topk(2, dim=-1)[0]
        gaps = top2[:, 0] - top2[:, 1]
        maxabs = lg.abs().max().item()
        per.append({
            "name": name,
            "min_top2_gap": gaps.min().item(),
            "min_rel_top2_gap": gaps.min().item() / maxabs,
            "logit_std": lg.std().item(),
            "max_abs_logit": maxabs,
        })
    return per


def acceptable(per, route):
    ok = all(p["min_rel_top2_gap"] >= MIN_REL_TOP2_GAP for p in per)
    for r in route.values():
        ok = ok and r["expert_margin_min"] >= MIN_ROUTE_MARGIN
        ok = ok and r.get("group_margin_min", 1.0) >= MIN_ROUTE_MARGIN
        ok = ok and r.get("tokens_where_mask_0_vs_neginf_differ", 0) == 0
    return ok


def hf_from_pretrained_check(fdir, model):
    """Independent check of our name/layout conversion: HF's own loader on the BF16 files.

    Not used for the FP8 fixture: transformers' dequantize path derives the block size as
    rows // scale_rows (see Fp8Dequantize._dequantize_one), which is wrong for partial edge
    blocks, so it cannot serve as a reference there."""
    ref = transformers.AutoModelForCausalLM.from_pretrained(
        str(fdir), dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    a, b = ref.state_dict(), model.state_dict()
    assert set(a) == set(b), set(a) ^ set(b)
    for k in a:
        assert torch.equal(a[k].to(torch.float32), b[k]), k
    return True


def build_one(name, fx, seed, verbose=True):
    fdir = OUT_ROOT / name
    cfg = fx["config"]
    hub = make_hub_tensors(fx, seed)
    file_tensors = to_file_tensors(fx, hub)
    files = write_fixture(fx, fdir, file_tensors)

    read, dtypes = read_files(fdir)
    assert set(read) == set(file_tensors)
    for k, v in file_tensors.items():
        assert read[k].dtype == v.dtype and torch.equal(read[k].view(torch.uint8), v.view(torch.uint8)), k
    check_file_dtypes(fx, dtypes)
    hf_sd, ignored = hub_to_hf(fx, read)
    if fx["mtp"]:
        L = cfg["num_hidden_layers"]
        assert ignored and all(k.startswith(f"model.layers.{L}.") for k in ignored)
    else:
        assert not ignored

    model = build_model(fdir)
    n_loaded = load_and_verify(model, hf_sd)
    rope = check_rope(model, cfg)
    prompts = prompts_for(fx)
    results, route = run_reference(model, cfg, prompts)
    per = logit_stats(results)
    return {
        "fdir": fdir, "files": files, "model": model, "results": results, "route": route,
        "per": per, "rope": rope, "n_loaded": n_loaded, "ignored": ignored, "dtypes": dtypes,
        "prompts": prompts,
    }


def finish_one(name, fx, seed, r):
    fdir = r["fdir"]
    cfg = fx["config"]
    if not fx["fp8"]:
        hf_from_pretrained_check(fdir, r["model"])
    prompts_json = []
    for (pname, toks, lg), st in zip(r["results"], r["per"]):
        rel = f"golden/{pname}.npy"
        np.save(fdir / rel, lg.numpy().astype(np.float32))
        prompts_json.append({
            "name": pname,
            "tokens": toks,
            "logits": rel,
            "min_top2_gap": st["min_top2_gap"],
            "min_rel_top2_gap": st["min_rel_top2_gap"],
            "logit_std": st["logit_std"],
            "max_abs_logit": st["max_abs_logit"],
        })
    dtype_counts = {}
    for dt in r["dtypes"].values():
        dtype_counts[dt] = dtype_counts.get(dt, 0) + 1
    golden = {
        "model_type": cfg["model_type"],
        "fixture": name,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "safetensors_version": safetensors.__version__,
        "numpy_version": np.__version__,
        "weight_seed": seed,
        "prompt_seed": fx["prompt_seed"],
        "reference": {
            "dtype": "float32",
            "attn_implementation": "eager",
            "experts_implementation": "eager",
            "weights": ("FP8 tensors: fp8_e4m3fn -> f32 times weight_scale_inv (f32, not rounded "
                        "to bf16); BF16 tensors converted exactly to f32; F32 as stored"
                        if fx["fp8"] else "BF16 tensors converted exactly to f32; F32 as stored"),
            "forward": "one full forward per prompt, no KV cache, positions 0..n-1, logits of every position",
            "tensors_loaded": r["n_loaded"],
            "hub_tensors_ignored_by_hf": len(r["ignored"]),
            "file_dtype_counts": dtype_counts,
        },
        "hf_behaviour": dict(r["rope"], moe_group_mask=("-inf" if cfg["model_type"] == "deepseek_v3" else None)),
        "routing": r["route"],
        "prompts": prompts_json,
    }
    with open(fdir / "golden.json", "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", action="append", choices=list(FIXTURES))
    ap.add_argument("--search-seed", action="store_true",
                    help="try seed, seed+1, ... until the logit/routing acceptance checks pass")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float32)
    for name, fx in FIXTURES.items():
        if args.only and name not in args.only:
            continue
        seed = fx["seed"]
        for attempt in range(2000 if args.search_seed else 1):
            r = build_one(name, fx, seed)
            if acceptable(r["per"], r["route"]):
                break
            print(f"{name}: seed {seed} rejected: "
                  f"{[round(p['min_rel_top2_gap'], 6) for p in r['per']]} {r['route']}", file=sys.stderr)
            seed += 1
        else:
            sys.exit(f"{name}: no acceptable seed (use --search-seed and update FIXTURES)")
        finish_one(name, fx, seed, r)
        size = sum(p.stat().st_size for p in r["fdir"].rglob("*") if p.is_file())
        print(f"{name}: seed {seed}, {r['n_loaded']} tensors loaded, {size / 1e6:.2f} MB, "
              f"min rel top2 gaps {['%.2e' % p['min_rel_top2_gap'] for p in r['per']]}, "
              f"logit std {[round(p['logit_std'], 2) for p in r['per']]}")
        print(f"  routing {json.dumps(r['route'])}")
        print(f"  softmax_scale {r['rope']['softmax_scale']:.8f} cos/sin factor {r['rope']['rope_cos_sin_factor']} "
              f"inv_freq {['%.6g' % x for x in r['rope']['rope_inv_freq']]}")


if __name__ == "__main__":
    main()
