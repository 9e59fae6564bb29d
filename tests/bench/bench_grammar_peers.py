#!/usr/bin/env python3
"""The peers of tests/bench/bench_grammar.c on the same cases and token ids: llguidance (the
library behind vLLM's and SGLang's "guidance" backend) and llama.cpp's grammar sampler (through
llama-cpp-python, its JSON-schema-to-GBNF converter included). One JSON line per case, in the
same shape as seekd's. Times are the thread's CPU time, as seekd's are.

    python3 bench_grammar_peers.py llguidance TOKENIZER_DIR CASES.jsonl
    python3 bench_grammar_peers.py llamacpp VOCAB.gguf CASES.jsonl
"""
import ctypes
import json
import sys
import time


def stats(name, engine, n, compile_ms, cold, warm, rejected, **extra):
    out = {"engine": engine, "case": name, "tokens": n, "compile_ms": round(compile_ms, 3),
           "rejected_at": rejected, **extra}
    for key, t in (("cold_", cold), ("", warm)):
        if not t:
            continue
        s = sorted(t)
        out[key + "mean_us"] = round(sum(t) / len(t), 2)
        out[key + "max_us"] = round(s[-1], 1)
        if not key:
            out["p50_us"], out["p99_us"] = round(s[len(s) // 2], 2), round(s[len(s) * 99 // 100], 2)
    print(json.dumps(out), flush=True)


def run_llguidance(tok_dir, cases):
    import llguidance
    import numpy as np
    cfg = json.load(open(f"{tok_dir}/tokenizer_config.json"))
    vocab = json.load(open(f"{tok_dir}/tokenizer.json"))
    eos = next(a["id"] for a in vocab["added_tokens"] if a["content"] == cfg["eos_token"])
    tok = llguidance.LLTokenizer(json.dumps(vocab), eos_token=eos)
    mask = np.zeros(((tok.vocab_size + 31) // 32) * 4, dtype=np.uint8)
    layout = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

    def replay(m, ids):
        times = []
        for i, t in enumerate(ids + [eos]):
            t0 = time.thread_time_ns()
            m.unsafe_compute_mask_ptr(mask.ctypes.data, mask.nbytes)
            times.append((time.thread_time_ns() - t0) / 1000)
            if not (mask[t >> 3] >> (t & 7)) & 1:
                return times, i
            if t != eos and not m.consume_token(t):
                return times, i
        return times, -1

    for c in cases:
        t0 = time.thread_time()
        g = llguidance.LLMatcher.grammar_from_json_schema(c["schema"], defaults=layout)
        m = llguidance.LLMatcher(tok, g)
        compile_ms = (time.thread_time() - t0) * 1000
        if m.is_error():
            print(json.dumps({"engine": "llguidance", "case": c["name"], "error": m.get_error()}))
            continue
        cold, rej = replay(m, c["ids"])
        m.reset()
        warm, _ = replay(m, c["ids"])
        stats(c["name"], "llguidance", len(c["ids"]), compile_ms, cold, warm, rej)


def run_llamacpp(gguf, cases):
    import llama_cpp as L
    import numpy as np
    from llama_cpp.llama_grammar import json_schema_to_gbnf
    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.vocab_only = True
    model = L.llama_model_load_from_file(gguf.encode(), mp)
    vocab = L.llama_model_get_vocab(model)
    n = L.llama_vocab_n_tokens(vocab)
    arr = (L.llama_token_data * n)()
    view = np.frombuffer(arr, dtype=[("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
    eos = L.llama_vocab_eos(vocab)

    def replay(smpl, ids):
        times = []
        for i, t in enumerate(ids + [eos]):
            view["id"] = np.arange(n, dtype=np.int32)
            view["logit"] = 0
            cur = L.llama_token_data_array(data=arr, size=n, selected=-1, sorted=False)
            t0 = time.thread_time_ns()
            L.llama_sampler_apply(smpl, ctypes.byref(cur))
            times.append((time.thread_time_ns() - t0) / 1000)
            if view["logit"][t] == -np.inf:
                return times, i
            if t != eos:
                L.llama_sampler_accept(smpl, t)
        return times, -1

    for c in cases:
        try:
            gbnf = json_schema_to_gbnf(json.dumps(c["schema"]))
        except Exception as ex:  # a schema its converter does not handle
            print(json.dumps({"engine": "llama.cpp", "case": c["name"], "error": str(ex)[:200]}))
            continue
        t0 = time.thread_time()
        smpl = L.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
        compile_ms = (time.thread_time() - t0) * 1000
        if not smpl:
            print(json.dumps({"engine": "llama.cpp", "case": c["name"], "error": "grammar refused"}))
            continue
        times, rej = replay(smpl, c["ids"])
        L.llama_sampler_free(smpl)
        stats(c["name"], "llama.cpp", len(c["ids"]), compile_ms, None, times, rej)


def main(engine, where, cases_path):
    cases = [json.loads(line) for line in open(cases_path)]
    if engine == "llguidance":
        run_llguidance(where, cases)
    else:
        run_llamacpp(where, cases)


if __name__ == "__main__":
    main(*sys.argv[1:])
