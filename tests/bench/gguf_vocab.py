#!/usr/bin/env python3
"""Write a Hugging Face tokenizer.json (+ tokenizer_config.json) from a vocabulary-only GGUF file
of a byte-level BPE tokenizer (llama.cpp ships such files for its tokenizer tests, e.g.
models/ggml-vocab-llama-bpe.gguf: Llama 3's 128,256 ids), so seekd, llguidance and `tokenizers`
all read the same vocabulary for the grammar benchmark.

    python3 tests/bench/gguf_vocab.py VOCAB.gguf OUT_DIR
"""
import json
import os
import sys

import gguf

# Llama 3's pre-tokenizer (the GGUF names it "llama-bpe"); only encoding uses it.
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def field(r, name):
    f = r.fields[name]
    if len(f.types) == 1 and f.types[0] != gguf.GGUFValueType.ARRAY:
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]
    if f.types[-1] == gguf.GGUFValueType.STRING:
        return [bytes(f.parts[i]).decode() for i in f.data]
    return [f.parts[i].tolist()[0] for i in f.data]


def main(path, out):
    r = gguf.GGUFReader(path)
    assert field(r, "tokenizer.ggml.model") == "gpt2", "only byte-level BPE vocabularies"
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = field(r, "tokenizer.ggml.merges")
    bos, eos = field(r, "tokenizer.ggml.bos_token_id"), field(r, "tokenizer.ggml.eos_token_id")
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, (t, ty) in enumerate(zip(tokens, types)) if ty == 3]  # control tokens
    special = {a["id"] for a in added}
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True,
                  "vocab": {t: i for i, t in enumerate(tokens) if i not in special},
                  "merges": merges},
    }
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "tokenizer.json"), "w") as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"add_bos_token": False, "add_eos_token": False, "bos_token": tokens[bos],
                   "eos_token": tokens[eos]}, f, ensure_ascii=False)
    print(f"{out}: {len(tokens)} ids, {len(merges)} merges, {len(added)} control tokens")


if __name__ == "__main__":
    main(*sys.argv[1:])
