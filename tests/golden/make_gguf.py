"""Tiny random GGUF models and their reference data, for seekd's GGUF tests.

Writes tests/fixtures/gguf/:
  <name>.gguf          four tiny models in the layouts llama.cpp's converter writes:
                       llama-legacy (SmolLM2-like: GQA, tied Q8_0 embeddings, every 32-value type,
                       F16/BF16, Llama 3 rope_freqs), qwen2-kquant (q/k/v biases, every K type),
                       deepseek2-mla (V3-like: split attn_k_b/attn_v_b, stacked experts,
                       exp_probs_b, sigmoid group routing, YaRN), deepseek2-legacy (V2-Lite-like:
                       attn_kv_b, plain attn_q, softmax routing, two shared experts, tied output,
                       32-value types mixed with K types)
  <name>/p<len>.npy    float64 reference logits (stored as float32) of each prompt, from
                       gguf_reference.py on the weights the gguf package dequantises
  golden.json          the prompts, the smallest top-1/top-2 gap and routing margin of each
  quant_blocks.gguf    random blocks of every quantised type next to the gguf package's
                       dequantisation (F32), for the C dequantisation test
  tokens.json          llama.cpp's token ids (llama-cpp-python, vocab only) for corpus texts
                       under every pre-tokenizer name seekd maps (control tokens parsed; "plain"
                       also when parsing them changes the ids), and for chat prompts rendered
                       with jinja2 from the template texts

The vocabulary is tests/fixtures/tokenizer/r1's (a 4,096-id byte-level BPE trained for the tests)
with six placeholder ids renamed to ChatML and Llama 3 control tokens.

Run with llama-cpp-python 0.3.36, gguf 0.19.0, numpy and jinja2 installed (the bench venv):
    python tests/golden/make_gguf.py            # everything
    python tests/golden/make_gguf.py --no-llama # models and references only
"""
import argparse
import json
import os
import pathlib
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import gguf_reference  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "gguf"
TOKDIR = ROOT / "tests" / "fixtures" / "tokenizer"
VOCAB = 4096
PROMPT_LENS = (1, 7, 40)
EXTRA_CONTROL = {3400: "<|im_start|>", 3401: "<|im_end|>", 3402: "<|begin_of_text|>",
                 3403: "<|start_header_id|>", 3404: "<|end_header_id|>", 3405: "<|eot_id|>"}

CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}")
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# pre-tokenizer names whose splitting is checked against llama.cpp
PRE_NAMES = ["deepseek-v3", "deepseek-llm", "deepseek-r1-qwen", "qwen2", "llama-bpe", "smollm",
             "gpt-2", "deepseek-coder", "default"]


# ---- vocabulary ---------------------------------------------------------------------------------

def load_vocab():
    """tokens, token types and merges of the test tokenizer, as a GGUF stores them."""
    tj = json.loads((TOKDIR / "r1" / "tokenizer.json").read_text())
    tokens = [None] * VOCAB
    types = [gguf.TokenType.UNUSED] * VOCAB
    for text, i in tj["model"]["vocab"].items():
        tokens[i], types[i] = text, gguf.TokenType.NORMAL
    for a in tj["added_tokens"]:
        tokens[a["id"]] = a["content"]
        types[a["id"]] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    for i, text in EXTRA_CONTROL.items():
        tokens[i], types[i] = text, gguf.TokenType.CONTROL
    for i in range(VOCAB):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    return tokens, types, merges


def add_vocab(w, pre, template, bos, eos, add_bos):
    tokens, types, merges = load_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(add_bos)
    if template:
        w.add_chat_template(template)


# ---- weights ------------------------------------------------------------------------------------

K_FIELDS = {T.Q2_K: (80, 82, 1.5), T.Q3_K: (108, None, 0), T.Q4_K: (0, 2, 7.5),
            T.Q5_K: (0, 2, 15.5), T.Q6_K: (208, None, 0)}


def k_blocks(rng, qtype, shape, std):
    """Random valid K-quant blocks for a tensor of numpy shape (..., cols), scaled to ~std."""
    bsize, tsize = gguf.GGML_QUANT_SIZES[qtype]
    n = int(np.prod(shape)) // bsize
    raw = rng.integers(0, 256, size=(n, tsize), dtype=np.uint8)
    d_off, m_off, m_ratio = K_FIELDS[qtype]

    def put(d):
        raw[:, d_off:d_off + 2] = np.frombuffer(np.float16(d).tobytes(), np.uint8)
        if m_off is not None:
            raw[:, m_off:m_off + 2] = np.frombuffer(np.float16(d * m_ratio).tobytes(), np.uint8)

    put(0.01)
    got = gguf.quants.dequantize(raw, qtype).std()
    put(0.01 * std / got)
    return raw.reshape(*shape[:-1], shape[-1] // bsize * tsize)


def encode(rng, arr, qtype):
    """arr (float) in qtype: numpy quantisation for the 32-value types, random blocks for K."""
    if qtype == T.F32:
        return arr.astype(np.float32), None
    if qtype == T.F16:
        return arr.astype(np.float16), None
    if qtype in K_FIELDS:
        return k_blocks(rng, qtype, arr.shape, float(arr.std())), qtype
    return gguf.quants.quantize(arr.astype(np.float32), qtype), qtype


class Builder:
    """Adds random tensors of given numpy shapes and types to a GGUFWriter."""

    def __init__(self, w, seed):
        self.w, self.rng = w, np.random.default_rng(seed)

    def add(self, name, shape, qtype=T.F32, std=0.08, mean=0.0, values=None):
        arr = values if values is not None else mean + std * self.rng.standard_normal(shape)
        data, raw = encode(self.rng, np.asarray(arr), qtype)
        self.w.add_tensor(name, data, raw_dtype=raw)

    def norm(self, name, n):
        self.add(name, (n,), values=1.0 + 0.1 * self.rng.standard_normal(n))


# ---- the four models ----------------------------------------------------------------------------

def llama_legacy(path, seed):
    D, L, H, HKV, HD, FF = 64, 2, 4, 2, 16, 96
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(L)
    w.add_context_length(2048)
    w.add_embedding_length(D)
    w.add_feed_forward_length(FF)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_dimension_count(HD)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(VOCAB)
    add_vocab(w, "smollm", CHATML_TEMPLATE, 3400, 3401, False)
    b = Builder(w, seed)
    b.add("token_embd.weight", (VOCAB, D), T.Q8_0, std=0.5)
    b.norm("output_norm.weight", D)
    b.add("rope_freqs.weight", (HD // 2,), values=1.0 + 3.0 * b.rng.random(HD // 2))
    kinds = [(T.Q4_1, T.Q4_0, T.Q5_0, T.Q5_1, T.Q4_1, T.Q8_0, T.F16),
             (T.Q5_1, T.Q8_0, T.Q4_1, T.Q4_0, T.Q5_0, T.Q4_1, T.BF16)]
    for il in range(L):
        q, k, v, o, g, u, d = kinds[il]
        p = f"blk.{il}."
        b.norm(p + "attn_norm.weight", D)
        b.norm(p + "ffn_norm.weight", D)
        b.add(p + "attn_q.weight", (H * HD, D), q, std=0.25)
        b.add(p + "attn_k.weight", (HKV * HD, D), k, std=0.25)
        b.add(p + "attn_v.weight", (HKV * HD, D), v, std=0.2)
        b.add(p + "attn_output.weight", (D, H * HD), o, std=0.15)
        b.add(p + "ffn_gate.weight", (FF, D), g, std=0.2)
        b.add(p + "ffn_up.weight", (FF, D), u, std=0.2)
        b.add(p + "ffn_down.weight", (D, FF), d, std=0.15)
    return w


def qwen2_kquant(path, seed):
    D, L, H, HKV, HD, FF = 256, 2, 4, 2, 64, 512
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_block_count(L)
    w.add_context_length(4096)
    w.add_embedding_length(D)
    w.add_feed_forward_length(FF)
    w.add_head_count(H)
    w.add_head_count_kv(HKV)
    w.add_rope_freq_base(1000000.0)
    w.add_layer_norm_rms_eps(1e-6)
    add_vocab(w, "deepseek-r1-qwen", (TOKDIR / "template_r1.jinja").read_text(), 3278, 3279, True)
    b = Builder(w, seed)
    b.add("token_embd.weight", (VOCAB, D), T.Q4_K, std=0.5)
    b.add("output.weight", (VOCAB, D), T.Q6_K, std=0.1)
    b.norm("output_norm.weight", D)
    kinds = [(T.Q4_K, T.Q5_K, T.Q6_K, T.Q3_K, T.Q2_K, T.Q4_K, T.Q6_K),
             (T.Q6_K, T.Q3_K, T.Q2_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q3_K)]
    for il in range(L):
        q, k, v, o, g, u, d = kinds[il]
        p = f"blk.{il}."
        b.norm(p + "attn_norm.weight", D)
        b.norm(p + "ffn_norm.weight", D)
        b.add(p + "attn_q.weight", (H * HD, D), q, std=0.1)
        b.add(p + "attn_k.weight", (HKV * HD, D), k, std=0.1)
        b.add(p + "attn_v.weight", (HKV * HD, D), v, std=0.1)
        b.add(p + "attn_q.bias", (H * HD,), std=0.3)
        b.add(p + "attn_k.bias", (HKV * HD,), std=0.3)
        b.add(p + "attn_v.bias", (HKV * HD,), std=0.3)
        b.add(p + "attn_output.weight", (D, H * HD), o, std=0.06)
        b.add(p + "ffn_gate.weight", (FF, D), g, std=0.1)
        b.add(p + "ffn_up.weight", (FF, D), u, std=0.1)
        b.add(p + "ffn_down.weight", (D, FF), d, std=0.06)
    return w


MLA = dict(D=256, L=2, H=4, QL=256, KVL=256, DN=32, DR=32, DV=32, FF=256, E=4, K=2, S=1, F=256)


def deepseek2(path, seed, legacy):
    c = dict(MLA)
    D, L, H, KVL, DN, DR, DV, E, F = (c[k] for k in ("D", "L", "H", "KVL", "DN", "DR", "DV", "E", "F"))
    S = 2 if legacy else 1
    w = gguf.GGUFWriter(str(path), "deepseek2")
    w.add_block_count(L)
    w.add_context_length(4096)
    w.add_embedding_length(D)
    w.add_feed_forward_length(c["FF"])
    w.add_head_count(H)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_leading_dense_block_count(1)
    w.add_vocab_size(VOCAB)
    if not legacy:
        w.add_q_lora_rank(c["QL"])
    w.add_kv_lora_rank(KVL)
    if legacy:
        w.add_head_count_kv(H)
        w.add_key_length(DN + DR)
        w.add_value_length(DV)
    else:
        w.add_head_count_kv(1)
        w.add_key_length(KVL + DR)
        w.add_value_length(KVL)
        w.add_key_length_mla(DN + DR)
        w.add_value_length_mla(DV)
    w.add_expert_feed_forward_length(F)
    w.add_expert_count(E)
    w.add_expert_used_count(c["K"])
    w.add_expert_shared_count(S)
    w.add_expert_weights_scale(1.0 if legacy else 2.5)
    if not legacy:
        w.add_expert_weights_norm(True)
        w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
        w.add_expert_group_count(2)
        w.add_expert_group_used_count(1)
    w.add_rope_dimension_count(DR)
    w.add_rope_freq_base(10000.0)
    w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    w.add_rope_scaling_factor(8.0 if legacy else 4.0)
    w.add_rope_scaling_orig_ctx_len(64)
    w.add_rope_scaling_yarn_log_mul(0.0707 if legacy else 0.1)
    if legacy:
        add_vocab(w, "deepseek-llm", (TOKDIR / "template_r1.jinja").read_text(), 3278, 3279, True)
    else:
        add_vocab(w, "deepseek-v3", (TOKDIR / "template_v3.jinja").read_text(), 3278, 3279, True)
    b = Builder(w, seed)
    b.add("token_embd.weight", (VOCAB, D), T.Q4_1 if legacy else T.Q4_K, std=0.5)
    if not legacy:  # the legacy model ties its output to the embeddings
        b.add("output.weight", (VOCAB, D), T.Q6_K, std=0.1)
    b.norm("output_norm.weight", D)
    for il in range(L):
        p = f"blk.{il}."
        b.norm(p + "attn_norm.weight", D)
        b.norm(p + "ffn_norm.weight", D)
        b.norm(p + "attn_kv_a_norm.weight", KVL)
        if legacy:
            b.add(p + "attn_q.weight", (H * (DN + DR), D), T.Q4_0, std=0.1)
            b.add(p + "attn_kv_b.weight", (H * (DN + DV), KVL), T.Q3_K, std=0.1)
        else:
            b.add(p + "attn_q_a.weight", (c["QL"], D), T.Q4_K, std=0.1)
            b.norm(p + "attn_q_a_norm.weight", c["QL"])
            b.add(p + "attn_q_b.weight", (H * (DN + DR), c["QL"]), T.Q5_K, std=0.1)
            b.add(p + "attn_k_b.weight", (H, KVL, DN), T.Q8_0, std=0.1)
            b.add(p + "attn_v_b.weight", (H, DV, KVL), T.Q4_K, std=0.1)
        b.add(p + "attn_kv_a_mqa.weight", (KVL + DR, D), T.Q4_1 if legacy else T.Q4_K, std=0.1)
        b.add(p + "attn_output.weight", (D, H * DV), T.Q5_1 if legacy else T.Q5_0, std=0.1)
        if il == 0:
            b.add(p + "ffn_gate.weight", (c["FF"], D), T.Q8_0 if legacy else T.Q4_K, std=0.1)
            b.add(p + "ffn_up.weight", (c["FF"], D), T.Q2_K if legacy else T.Q4_K, std=0.1)
            b.add(p + "ffn_down.weight", (D, c["FF"]), T.Q4_0 if legacy else T.Q6_K, std=0.06)
            continue
        b.add(p + "ffn_gate_inp.weight", (E, D), T.F32, std=0.3)
        if not legacy:
            b.add(p + "exp_probs_b.bias", (E,), values=16.0 * b.rng.random(E) - 8.0)
        b.add(p + "ffn_gate_exps.weight", (E, F, D), T.Q5_K if legacy else T.Q4_K, std=0.1)
        b.add(p + "ffn_up_exps.weight", (E, F, D), T.Q2_K if legacy else T.Q4_K, std=0.1)
        b.add(p + "ffn_down_exps.weight", (E, D, F), T.Q8_0 if legacy else T.Q6_K, std=0.08)
        b.add(p + "ffn_gate_shexp.weight", (F * S, D), T.Q4_0 if legacy else T.Q4_K, std=0.1)
        b.add(p + "ffn_up_shexp.weight", (F * S, D), T.Q4_0 if legacy else T.Q4_K, std=0.1)
        b.add(p + "ffn_down_shexp.weight", (D, F * S), T.Q5_0 if legacy else T.Q6_K, std=0.06)
    return w


MODELS = {
    "llama-legacy": (llama_legacy, 11),
    "qwen2-kquant": (qwen2_kquant, 12),
    "deepseek2-mla": (lambda p, s: deepseek2(p, s, False), 13),
    "deepseek2-legacy": (lambda p, s: deepseek2(p, s, True), 14),
}


def write(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file(progress=False)
    w.close()


def top_gap(logits):
    s = np.sort(logits, -1)
    return float((s[:, -1] - s[:, -2]).min() / np.abs(logits).max())


def make_model(name, prompts_rng):
    make, seed = MODELS[name]
    for attempt in range(40):
        path = OUT / f"{name}.gguf"
        write(make(path, seed + 1000 * attempt))
        m = gguf_reference.Model(str(path))
        prompts, ok = [], True
        for n in PROMPT_LENS:
            tokens = [int(t) for t in prompts_rng.integers(0, 3278, n)]
            logits, margin = gguf_reference.forward(m, tokens)
            if margin < 2e-5:  # a near-tie in routing: another seed
                ok = False
                break
            prompts.append((tokens, logits, margin))
        if ok:
            break
        print(f"{name}: routing near-tie with seed {seed + 1000 * attempt}, retrying", file=sys.stderr)
    else:
        sys.exit(f"{name}: no seed without routing near-ties")
    (OUT / name).mkdir(exist_ok=True)
    entries = []
    for tokens, logits, margin in prompts:
        f = f"{name}/p{len(tokens)}.npy"
        np.save(OUT / f, logits.astype(np.float32))
        entries.append({"tokens": tokens, "logits": f, "min_top2_gap": top_gap(logits),
                        "min_routing_margin": None if margin == float("inf") else margin})
    return {"file": f"{name}.gguf", "seed": seed + 1000 * attempt, "prompts": entries}


# ---- dequantisation blocks ----------------------------------------------------------------------

def quant_blocks():
    """Each quantised type: random blocks ([4, 512] values) and the gguf package's floats."""
    rng = np.random.default_rng(5)
    w = gguf.GGUFWriter(str(OUT / "quant_blocks.gguf"), "blocks")
    for qt in (T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K):
        bsize, tsize = gguf.GGML_QUANT_SIZES[qt]
        raw = rng.integers(0, 256, size=(4 * 512 // bsize, tsize), dtype=np.uint8)
        d_off = {T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}.get(qt, [0])
        if qt in (T.Q4_1, T.Q5_1):
            d_off = [0, 2]
        for o in d_off:  # finite, varied scales (random fp16 bits may be NaN or inf)
            raw[:, o:o + 2] = np.frombuffer((rng.standard_normal(len(raw)) * 0.05).astype(np.float16).tobytes(), np.uint8).reshape(-1, 2)
        name = qt.name.lower()
        w.add_tensor(name, raw.reshape(4, -1), raw_dtype=qt)
        w.add_tensor(name + ".f32", gguf.quants.dequantize(raw, qt).reshape(4, 512).astype(np.float32))
    write(w)


# ---- llama.cpp token ids ------------------------------------------------------------------------

def llama_vocab(path):
    from llama_cpp import Llama
    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def vocab_file(pre, path):
    """A vocabulary-only GGUF (with the hyper-parameters llama.cpp reads) for one pre name."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(1)
    w.add_context_length(512)
    w.add_embedding_length(64)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_layer_norm_rms_eps(1e-5)
    add_vocab(w, pre, None, 3278, 3279, False)
    write(w)


def token_goldens(tmp):
    corpus = json.loads((TOKDIR / "corpus.json").read_text())
    texts = [c["text"] for c in corpus][::20]
    texts += ["<|im_start|>user\nHi<|im_end|>\n", "<｜User｜>2+2=<｜Assistant｜><think>\n", "x  \n\n  y\t\t1234567",
              "don't WON'T you're I'LL 'S", "ＡＢＣ１２３ｘｙｚ", "µß ΩK émoji 🎉🎉 中文字符かなカナ", "   ", "\r\n\r\n", ""]
    out = {"pre": {}, "chat": []}
    for pre in PRE_NAMES:
        path = tmp / f"vocab-{pre}.gguf"
        vocab_file(pre, path)
        llm = llama_vocab(path)
        cases = []
        for text in texts:
            plain = llm.tokenize(text.encode(), add_bos=False, special=False)
            special = llm.tokenize(text.encode(), add_bos=False, special=True)
            case = {"text": text, "special": special}
            if plain != special:  # only texts that spell control tokens
                case["plain"] = plain
            cases.append(case)
        out["pre"][pre] = cases
        del llm
    out["chat"] = chat_goldens()
    return out


CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "  Hi there!\n"},
     {"role": "assistant", "content": "Hello. How can I help?"}, {"role": "user", "content": "Count: 1 2 3"}],
    [{"role": "user", "content": "Ünïcödé ✓ 中文 <b>tags</b>"}, {"role": "assistant", "content": "ok"}],
]


def chat_goldens():
    """Each template rendered by jinja2 and tokenised by llama.cpp (specials parsed)."""
    import jinja2
    env = jinja2.Environment()
    cases = []
    for fixture, name, text, bos in (("llama-legacy", "chatml", CHATML_TEMPLATE, ""),
                                      ("llama-legacy", "llama3", LLAMA3_TEMPLATE, "<|begin_of_text|>")):
        llm = llama_vocab(OUT / f"{fixture}.gguf")
        for conv in CONVERSATIONS:
            for gen in (True, False):
                s = env.from_string(text).render(messages=conv, add_generation_prompt=gen, bos_token=bos)
                cases.append({"fixture": fixture, "template": name, "messages": conv, "generation": gen,
                              "text": s, "ids": llm.tokenize(s.encode(), add_bos=False, special=True)})
        del llm
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-llama", action="store_true", help="skip the llama.cpp token ids")
    ap.add_argument("--tokens-only", action="store_true", help="only the llama.cpp token ids")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.tokens_only:
        args.no_llama = False
    prompts_rng = np.random.default_rng(2024)
    golden = None if args.tokens_only else {"versions": {"gguf": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0",
                           "numpy": np.__version__}, "models": {}}
    for name in MODELS if golden else ():
        golden["models"][name] = make_model(name, prompts_rng)
        print(f"wrote {name}", file=sys.stderr)
    if golden:
        (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
        quant_blocks()
    if not args.no_llama:
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            goldens = token_goldens(pathlib.Path(tmp))
        (OUT / "tokens.json").write_text(json.dumps(goldens, ensure_ascii=False, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
