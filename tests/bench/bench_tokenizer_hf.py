#!/usr/bin/env python3
"""HF `tokenizers` encode throughput on the committed corpus, single thread (the reference figure
next to bench_tokenizer).  usage: bench_tokenizer_hf.py FIXTURE_DIR [SECONDS]"""
import json
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"          # must be set before tokenizers loads
os.environ["TOKENIZERS_PARALLELISM"] = "false"
try:
    from tokenizers import Tokenizer
except ImportError:
    print("hf tokenizers: not installed (pip install tokenizers) -- skipped")
    sys.exit(0)

d = sys.argv[1]
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
tok = Tokenizer.from_file(os.path.join(d, "v3", "tokenizer.json"))
texts = [c["text"] for c in json.load(open(os.path.join(d, "corpus.json"), encoding="utf-8"))]
size = sum(len(t.encode("utf-8")) for t in texts)
for mode, run in (("encode_batch", lambda: tok.encode_batch(texts, add_special_tokens=False)),
                  ("encode", lambda: [tok.encode(t, add_special_tokens=False) for t in texts])):
    rounds, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        run()
        rounds += 1
    dt = time.perf_counter() - t0
    print(f"hf {mode:12s}: {size * rounds / dt / 1e6:7.2f} MB/s  (tokenizers {__import__('tokenizers').__version__}, 1 thread)")
