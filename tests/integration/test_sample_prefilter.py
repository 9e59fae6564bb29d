"""Sampling from pre-filtered rows (--sample-prefilter on): the engine samples each row from its
64 best logits wherever engine/sampler_cand.c proves that gives the same token, logprobs and
random draw as the whole row, and from the whole row otherwise. Served end to end, every request
must come back byte for byte as with whole rows, and /metrics says which way each token went."""
import re

import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server, seekd_env  # noqa: F401

CASES = [
    {"temperature": 0, "logprobs": 5},
    {"temperature": 0.8, "top_p": 0.9, "seed": 7, "logprobs": 3},
    {"temperature": 1.2, "top_k": 20, "seed": 3},
    {"temperature": 0.7, "min_p": 0.2, "seed": 11, "logprobs": 1},
    {"temperature": 0.9, "seed": 5, "logit_bias": {"17": 4.0, "99": -100}},
    {"temperature": 0.6, "seed": 13, "presence_penalty": 0.5, "frequency_penalty": 0.3},
    {"temperature": 0, "repetition_penalty": 1.3},
    {"temperature": 0.9, "seed": 21, "n": 2},
    {"temperature": 1.0, "seed": 9},
]


def ask(server, case, i):
    body = {"prompt": [1, 5, 9 + i, 200 + 7 * i], "max_tokens": 12, "ignore_eos": True, **case}
    r = requests.post(server.base + "/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    return [(c["index"], c["text"], c["finish_reason"], c.get("logprobs")) for c in out["choices"]]


def counters(server):
    text = requests.get(server.base + "/metrics", timeout=5).text
    got = {}
    for line in text.splitlines():
        for name in ("sampled_from_candidates", "sampled_from_whole_rows"):
            if line.startswith(f"seekd:{name}_total "):
                got[name] = float(line.split()[1])
    return got


def test_prefiltered_rows_sample_like_whole_rows(binary, seekd_env):  # noqa: F811
    on = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER, ("--sample-prefilter", "on"))
    try:
        off = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER, ("--sample-prefilter", "off"))
        try:
            for i, case in enumerate(CASES):
                assert ask(on, case, i) == ask(off, case, i), case
            c_on, c_off = counters(on), counters(off)
        finally:
            off.stop()
    finally:
        on.stop()
    assert c_on["sampled_from_candidates"] > 0, c_on
    assert c_on["sampled_from_whole_rows"] > 0, c_on  # flat rows the candidates cannot speak for
    assert c_off["sampled_from_candidates"] == 0, c_off


GRAMMAR_CASES = [
    ({"temperature": 0}, {"regex": r"[a-z]{2,5}-[0-9]{1,3}"}),
    ({"temperature": 0.8, "top_k": 5, "seed": 4}, {"regex": r"[a-z]{2,5}-[0-9]{1,3}"}),
    ({"temperature": 0, "logprobs": 3}, {"choice": ["positive", "negative", "neutral"]}),
    ({"temperature": 0.9, "top_k": 3, "seed": 8, "n": 2}, {"choice": ["positive", "negative", "neutral"]}),
]


def test_grammar_rows_take_the_whole_row(binary, seekd_env):  # noqa: F811
    """The candidates cannot honour a grammar mask: a constrained row must be sampled whole, so
    the replies match the grammar, equal those served without the pre-filter, and no constrained
    token is counted as sampled from the candidates."""
    on = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER, ("--sample-prefilter", "on"))
    try:
        off = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER, ("--sample-prefilter", "off"))
        try:
            before = counters(on)
            for i, (case, so) in enumerate(GRAMMAR_CASES):
                case = {**case, "max_tokens": 40, "ignore_eos": False, "structured_outputs": so}
                got, want = ask(on, case, i), ask(off, case, i)
                assert got == want, case
                for _, text, _, _ in got:
                    ok = re.fullmatch(so["regex"], text) if "regex" in so else text in so["choice"]
                    assert ok, (case, text)
            after = counters(on)
        finally:
            off.stop()
    finally:
        on.stop()
    assert after["sampled_from_candidates"] == before["sampled_from_candidates"], (before, after)
    assert after["sampled_from_whole_rows"] > before["sampled_from_whole_rows"], (before, after)


@pytest.mark.parametrize("value", ["maybe", ""])
def test_bad_value_refused(binary, value):
    import subprocess
    p = subprocess.run([binary, "serve", "--model", str(SERVE_MODEL), "--sample-prefilter", value],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "sample-prefilter" in p.stderr, p.stderr
