"""Float64 reference forwards of GGUF models (llama, qwen2, deepseek2) in numpy.

The weights are the `gguf` package's dequantisation (bit-exact with ggml's `to_float`), widened
to float64; the arithmetic follows llama.cpp's graphs for these architectures (RMSNorm, RoPE in
ggml's NORM mode for llama/deepseek2 and NEOX mode for qwen2, YaRN with llama.cpp's DeepSeek
attention factor, MLA written out as full multi-head attention, DeepSeekMoE routing). It shares
no code with seekd: make_gguf.py uses it to write the reference logits of the GGUF fixtures, and
it is the reference for SmolLM2.

    python tests/golden/gguf_reference.py MODEL.gguf 1,2,3 out.npy
"""
import math
import sys

import numpy as np
from gguf import GGUFReader, dequantize


class Model:
    """Metadata and every tensor of one GGUF file, dequantised to float64 in numpy order."""

    def __init__(self, path):
        r = GGUFReader(path)
        self.kv = {f.name: f.contents() for f in r.fields.values()}
        self.arch = self.kv["general.architecture"]
        self.w = {}
        for t in r.tensors:
            shape = tuple(int(x) for x in reversed(t.shape))
            self.w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)

    def get(self, name, default=None):
        return self.kv.get(f"{self.arch}.{name}", default)


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def yarn_mscale(factor, m):
    return 1.0 if factor <= 1.0 else 0.1 * m * math.log(factor) + 1.0


def inv_freqs(m, dim):
    """Rotation frequencies (YaRN-blended when the file says so) and the softmax factor."""
    base = m.get("rope.freq_base", 10000.0)
    inv = 1.0 / base ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    if "rope_freqs.weight" in m.w:
        inv = inv / m.w["rope_freqs.weight"]
    kind, factor = m.get("rope.scaling.type", "none"), m.get("rope.scaling.factor", 1.0)
    if kind == "linear":
        return inv / factor, 1.0
    if kind != "yarn":
        return inv, 1.0
    orig = m.get("rope.scaling.original_context_length")
    fast, slow = m.get("rope.scaling.yarn_beta_fast", 32.0), m.get("rope.scaling.yarn_beta_slow", 1.0)
    lo = math.floor(dim * math.log(orig / (fast * 2 * math.pi)) / (2 * math.log(base)))
    hi = math.ceil(dim * math.log(orig / (slow * 2 * math.pi)) / (2 * math.log(base)))
    lo, hi = max(lo, 0), min(hi, dim - 1)
    hi = hi + 0.001 if lo == hi else hi
    ramp = np.clip((np.arange(dim // 2) - lo) / (hi - lo), 0.0, 1.0)
    inv = inv / factor * ramp + inv * (1.0 - ramp)
    mscale_all = m.get("rope.scaling.yarn_log_multiplier", 0.0) / 0.1
    return inv, yarn_mscale(factor, mscale_all) ** 2


def rope(x, pos, inv, neox):
    """Rotates the last axis of x [T, heads, d] at positions pos."""
    ang = np.outer(pos, inv)[:, None, :]
    c, s = np.cos(ang), np.sin(ang)
    x = x.copy()
    if neox:
        h = x.shape[-1] // 2
        a, b = x[..., :h].copy(), x[..., h:].copy()
        x[..., :h], x[..., h:] = a * c - b * s, a * s + b * c
    else:
        a, b = x[..., 0::2].copy(), x[..., 1::2].copy()
        x[..., 0::2], x[..., 1::2] = a * c - b * s, a * s + b * c
    return x


def causal_attention(q, k, v, scale):
    """q [T, H, d], k [T, H, d], v [T, H, dv] (already expanded to every head)."""
    T = q.shape[0]
    s = np.einsum("thd,shd->hts", q, k) * scale
    s = s + np.triu(np.full((T, T), -np.inf), 1)
    s = np.exp(s - s.max(-1, keepdims=True))
    p = s / s.sum(-1, keepdims=True)
    return np.einsum("hts,shd->thd", p, v)


def mlp(w, pre, x):
    return (silu(x @ w[pre + "ffn_gate.weight"].T) * (x @ w[pre + "ffn_up.weight"].T)) @ w[pre + "ffn_down.weight"].T


def dense_attention(m, pre, x, pos, inv, neox):
    w = m.w
    H, Hkv = m.get("attention.head_count"), m.get("attention.head_count_kv", m.get("attention.head_count"))
    T = x.shape[0]

    def proj(name, n):
        y = x @ w[f"{pre}attn_{name}.weight"].T
        if f"{pre}attn_{name}.bias" in w:
            y = y + w[f"{pre}attn_{name}.bias"]
        return y.reshape(T, n, -1)

    q, k, v = proj("q", H), proj("k", Hkv), proj("v", Hkv)
    hd = q.shape[-1]
    q, k = rope(q, pos, inv, neox), rope(k, pos, inv, neox)
    k, v = np.repeat(k, H // Hkv, axis=1), np.repeat(v, H // Hkv, axis=1)
    o = causal_attention(q, k, v, 1.0 / math.sqrt(hd)).reshape(T, -1)
    o = o @ w[pre + "attn_output.weight"].T
    return o + w.get(pre + "attn_output.bias", 0.0)


def mla_weights(m, pre, H, dn, dv):
    """Each head's W_UK [H, dn, dc] and W_UV [H, dv, dc], from either llama.cpp layout."""
    w = m.w
    if pre + "attn_kv_b.weight" in w:
        kv_b = w[pre + "attn_kv_b.weight"].reshape(H, dn + dv, -1)
        return kv_b[:, :dn, :], kv_b[:, dn:, :]
    return w[pre + "attn_k_b.weight"].transpose(0, 2, 1), w[pre + "attn_v_b.weight"]


def mla_attention(m, pre, x, pos, inv, mscale2):
    w, eps = m.w, m.get("attention.layer_norm_rms_epsilon")
    H, dc, dr = m.get("attention.head_count"), m.get("attention.kv_lora_rank"), m.get("rope.dimension_count")
    qk = m.get("attention.key_length_mla", m.get("attention.key_length"))
    dv = m.get("attention.value_length_mla", m.get("attention.value_length"))
    dn, T = qk - dr, x.shape[0]
    if pre + "attn_q_a.weight" in w:
        q = rms_norm(x @ w[pre + "attn_q_a.weight"].T, w[pre + "attn_q_a_norm.weight"], eps)
        q = q @ w[pre + "attn_q_b.weight"].T
    else:
        q = x @ w[pre + "attn_q.weight"].T
    q = q.reshape(T, H, qk)
    kv = x @ w[pre + "attn_kv_a_mqa.weight"].T
    c = rms_norm(kv[:, :dc], w[pre + "attn_kv_a_norm.weight"], eps)
    k_pe = rope(kv[:, None, dc:], pos, inv, False)
    q_pe = rope(q[..., dn:], pos, inv, False)
    w_uk, w_uv = mla_weights(m, pre, H, dn, dv)
    k_nope = np.einsum("hdc,tc->thd", w_uk, c)
    v = np.einsum("hdc,tc->thd", w_uv, c)
    qq = np.concatenate([q[..., :dn], q_pe], -1)
    kk = np.concatenate([k_nope, np.repeat(k_pe, H, axis=1)], -1)
    o = causal_attention(qq, kk, v, mscale2 / math.sqrt(qk)).reshape(T, -1)
    return o @ w[pre + "attn_output.weight"].T


def route(m, logits, bias):
    """Expert ids and weights of one token (llama.cpp's deepseek2 routing), and the margin of
    the choice (the last kept group's score over the first dropped one's, the k-th expert's
    over the next one's)."""
    E, k = logits.shape[0], m.get("expert_used_count")
    if m.get("expert_gating_func", 1) == 2:
        s = 1.0 / (1.0 + np.exp(-logits))
    else:
        s = np.exp(logits - logits.max())
        s /= s.sum()
    choice = s + (bias if bias is not None else 0.0)
    groups, used = m.get("expert_group_count", 1), m.get("expert_group_used_count", 1)
    margin = math.inf
    if groups > 1:
        g = choice.reshape(groups, -1)
        score = np.sort(g, -1)[:, -2:].sum(-1) if m.get("expert_gating_func", 1) == 2 else g.max(-1)
        keep = np.argsort(-score, kind="stable")[:used]
        ranked = np.sort(score)[::-1]
        margin = ranked[used - 1] - ranked[used] if used < groups else math.inf
        mask = np.full(groups, -np.inf)
        mask[keep] = 0.0
        choice = (g + mask[:, None]).reshape(-1)
    idx = np.argsort(-choice, kind="stable")[:k]
    ranked = np.sort(choice)[::-1]
    if k < len(ranked) and np.isfinite(ranked[k]):
        margin = min(margin, ranked[k - 1] - ranked[k])
    wts = s[idx]
    if m.get("expert_weights_norm", False):
        wts = wts / wts.sum()
    return idx, wts * m.get("expert_weights_scale", 1.0), margin


def moe(m, pre, x):
    w = m.w
    bias = w.get(pre + "exp_probs_b.bias")
    out = np.zeros_like(x)
    margins = []
    for t in range(x.shape[0]):
        idx, wts, margin = route(m, x[t] @ w[pre + "ffn_gate_inp.weight"].T, bias)
        margins.append(margin)
        for e, g in zip(idx, wts):
            gate = w[pre + "ffn_gate_exps.weight"][e] @ x[t]
            up = w[pre + "ffn_up_exps.weight"][e] @ x[t]
            out[t] += g * (w[pre + "ffn_down_exps.weight"][e] @ (silu(gate) * up))
    if pre + "ffn_gate_shexp.weight" in w:
        out += (silu(x @ w[pre + "ffn_gate_shexp.weight"].T) * (x @ w[pre + "ffn_up_shexp.weight"].T)) @ w[pre + "ffn_down_shexp.weight"].T
    return out, min(margins)


def forward(m, tokens):
    """Logits [T, vocab] (float64) of every position, and the smallest routing margin."""
    w, eps = m.w, m.get("attention.layer_norm_rms_epsilon")
    pos = np.arange(len(tokens), dtype=np.float64)
    mla = m.arch == "deepseek2"
    dim = m.get("rope.dimension_count") or m.get("embedding_length") // m.get("attention.head_count")
    inv, mscale2 = inv_freqs(m, dim)
    h = w["token_embd.weight"][np.asarray(tokens)]
    margin = math.inf
    for il in range(m.get("block_count") - m.get("nextn_predict_layers", 0)):
        pre = f"blk.{il}."
        x = rms_norm(h, w[pre + "attn_norm.weight"], eps)
        if mla:
            h = h + mla_attention(m, pre, x, pos, inv, mscale2)
        else:
            h = h + dense_attention(m, pre, x, pos, inv, m.arch == "qwen2")
        x = rms_norm(h, w[pre + "ffn_norm.weight"], eps)
        if pre + "ffn_gate_inp.weight" in w:
            y, mg = moe(m, pre, x)
            h, margin = h + y, min(margin, mg)
        else:
            h = h + mlp(w, pre, x)
    head = w.get("output.weight", w["token_embd.weight"])
    return rms_norm(h, w["output_norm.weight"], eps) @ head.T, margin


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    logits, _ = forward(Model(sys.argv[1]), [int(t) for t in sys.argv[2].split(",")])
    np.save(sys.argv[3], logits.astype(np.float32))


if __name__ == "__main__":
    main()
