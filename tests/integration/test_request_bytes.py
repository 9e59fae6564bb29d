"""Every place that builds JSON from request or model bytes: token texts that are not UTF-8 on
their own (byte-level BPE pieces) in logprobs, NUL characters in echoed prompts, detokenized
text, stop sequences and the model name. Each either round-trips exactly or is refused with a
400/404 — never dropped, cut short or silently changed."""
import json

import pytest
import requests

N_VOCAB = 4096


def post(server, path, body):
    return requests.post(server.base + path, json=body, timeout=60)


@pytest.fixture(scope="module")
def byte_tokens(server):
    """Ids whose bytes are not UTF-8 on their own (they detokenize to U+FFFD alone)."""
    out = []
    for i in range(3, 600):
        r = post(server, "/detokenize", {"tokens": [i]})
        if r.status_code == 200 and "\ufffd" in r.json()["prompt"]:
            out.append(i)
        if len(out) == 4:
            break
    assert out, "the fixture vocabulary has byte tokens"
    return out


def test_completions_logprobs_keep_byte_tokens(server, byte_tokens):
    tid = byte_tokens[0]
    for stream in (False, True):
        body = {"prompt": [1, 2], "max_tokens": 3, "temperature": 0, "logprobs": 2,
                "ignore_eos": True, "logit_bias": {str(tid): 100}, "stream": stream}
        r = post(server, "/v1/completions", body)
        assert r.status_code == 200, r.text
        if stream:
            lps = [json.loads(line[6:])["choices"][0]["logprobs"] for line in
                   r.text.splitlines() if line.startswith("data: {")]
            tokens = [t for lp in lps if lp for t in lp["tokens"]]
            offsets = [o for lp in lps if lp for o in lp["text_offset"]]
        else:
            lp = r.json()["choices"][0]["logprobs"]
            tokens, offsets = lp["tokens"], lp["text_offset"]
            assert len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == 3
        assert len(tokens) == len(offsets) == 3, (tokens, offsets)
        assert all(t.startswith("bytes:\\x") for t in tokens), tokens


def test_chat_logprobs_carry_the_real_bytes(server, byte_tokens):
    tid = byte_tokens[0]
    raw = requests.post(server.base + "/tokenize", json={"prompt": "x"}, timeout=10)
    assert raw.status_code == 200
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2, "temperature": 0,
            "ignore_eos": True, "logprobs": True, "top_logprobs": 2,
            "logit_bias": {str(tid): 100}}
    r = post(server, "/v1/chat/completions", body)
    assert r.status_code == 200, r.text
    entries = r.json()["choices"][0]["logprobs"]["content"]
    assert len(entries) == 2
    for e in entries:
        assert e["token"].startswith("bytes:\\x"), e
        assert e["token"] == "bytes:" + "".join(f"\\x{b:02x}" for b in e["bytes"])
        assert any(b >= 0x80 for b in e["bytes"])


@pytest.fixture(scope="module")
def nul_token(server):
    """The id whose text is one NUL byte (byte-level BPE has one for every byte)."""
    for i in range(0, 600):
        r = post(server, "/detokenize", {"tokens": [i]})
        if r.status_code == 200 and r.json()["prompt"] == "\u0000":
            return i
    pytest.fail("no NUL token in the fixture vocabulary")


def test_detokenize_and_echo_keep_nul_characters(server, nul_token):
    ids = [nul_token, 1000, nul_token]
    text = post(server, "/detokenize", {"tokens": ids}).json()["prompt"]
    assert text.count("\u0000") == 2 and len(text) > 2, repr(text)
    r = post(server, "/v1/completions", {"prompt": ids, "echo": True, "max_tokens": 1})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"].startswith(text)


def test_nul_in_request_strings_is_refused(server):
    """jansson refuses \\u0000 in strings (no JSON_ALLOW_NUL): every C string the server takes
    from a request is whole."""
    from conftest import SERVE_MODEL
    for body in ({"prompt": "a\u0000b", "max_tokens": 1},
                 {"prompt": [1], "max_tokens": 1, "stop": ["x", "\u0000"]},
                 {"model": SERVE_MODEL.name + "\u0000x", "prompt": [1], "max_tokens": 1}):
        r = post(server, "/v1/completions", body)
        assert r.status_code == 400 and "invalid JSON" in r.json()["error"]["message"], r.text


def test_logit_bias_keys_checked_against_the_vocabulary(server):
    """Every parameter is validated where the request is read (400 naming it), not later."""
    for key in (str(N_VOCAB), "999999", "2147483647"):
        r = post(server, "/v1/completions", {"prompt": [1], "max_tokens": 1,
                                             "logit_bias": {key: 1}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "logit_bias", r.text
