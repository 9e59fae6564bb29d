"""The HTTP API of a real `seekd serve` on 127.0.0.1: endpoints, the OpenAI response shapes,
and the catalogue of bad requests — each answered with an OpenAI error object and the right
status, the server serving normally afterwards."""
import json
import socket

import pytest
import requests

from conftest import SERVE_MODEL


def post(server, path, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(server.base + path, data=data,
                         headers={"Content-Type": "application/json"}, timeout=120, **kw)


def assert_error(resp, status, param=None, fragment=None):
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if param is not None:
        assert err["param"] == param, err
    if fragment is not None:
        assert fragment in err["message"], err["message"]
    return err


def test_health_version_models(server):
    assert requests.get(server.base + "/health").status_code == 200
    assert requests.get(server.base + "/version").json()["version"]
    models = requests.get(server.base + "/v1/models").json()
    assert models["object"] == "list"
    ids = [m["id"] for m in models["data"]]
    assert ids == [SERVE_MODEL.name]
    one = requests.get(server.base + f"/v1/models/{SERVE_MODEL.name}").json()
    assert one["id"] == SERVE_MODEL.name and one["object"] == "model"
    assert_error(requests.get(server.base + "/v1/models/nope"), 404)


def test_routing_errors(server):
    assert_error(requests.get(server.base + "/v1/nothing"), 404)
    r = requests.get(server.base + "/v1/completions")
    assert_error(r, 405)
    assert "POST" in r.headers["Allow"]
    assert_error(requests.delete(server.base + "/health"), 405)


def test_completion_shape(server):
    r = post(server, "/v1/completions", {"prompt": [5, 6, 7], "max_tokens": 5, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert body["model"] == SERVE_MODEL.name and body["system_fingerprint"]
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] in ("length", "stop")
    u = body["usage"]
    assert u["prompt_tokens"] == 3 and 1 <= u["completion_tokens"] <= 5
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["prompt_tokens_details"]["cached_tokens"] >= 0


def test_tokenize_roundtrip(server):
    r = post(server, "/tokenize", {"prompt": "Hello world, 123!"})
    assert r.status_code == 200, r.text
    toks = r.json()["tokens"]
    assert r.json()["count"] == len(toks) > 1
    text = post(server, "/detokenize", {"tokens": toks}).json()["prompt"]
    assert text.endswith("Hello world, 123!")


BAD = [
    ("malformed json", b'{"prompt": [1, 2', 400, None, "invalid JSON"),
    ("not an object", b'[1, 2, 3]', 400, None, "JSON object"),
    ("empty body", b'', 400, None, "empty"),
    ("duplicate keys", b'{"prompt": [1], "prompt": [2]}', 400, None, "duplicate"),
    ("invalid utf-8", b'{"prompt": "\xff\xfe"}', 400, None, None),
    ("prompt wrong type", {"prompt": 5}, 400, "prompt", None),
    ("prompt missing", {"max_tokens": 3}, 400, "prompt", "required"),
    ("prompt empty ids", {"prompt": []}, 400, "prompt", None),
    ("token id out of vocab", {"prompt": [1, 999999]}, 400, "prompt", None),
    ("n zero", {"prompt": [1], "n": 0}, 400, "n", None),
    ("n huge", {"prompt": [1], "n": 100000}, 400, "n", None),
    ("n string", {"prompt": [1], "n": "2"}, 400, "n", "integer"),
    ("max_tokens zero", {"prompt": [1], "max_tokens": 0}, 400, "max_tokens", None),
    ("max_tokens negative", {"prompt": [1], "max_tokens": -5}, 400, "max_tokens", None),
    ("max_tokens float", {"prompt": [1], "max_tokens": 2.5}, 400, "max_tokens", None),
    ("temperature high", {"prompt": [1], "temperature": 3}, 400, "temperature", None),
    ("temperature string", {"prompt": [1], "temperature": "hot"}, 400, "temperature", None),
    ("top_p zero", {"prompt": [1], "top_p": 0}, 400, "top_p", None),
    ("logprobs too many", {"prompt": [1], "logprobs": 21}, 400, "logprobs", None),
    ("stop wrong type", {"prompt": [1], "stop": 7}, 400, "stop", None),
    ("stop too many", {"prompt": [1], "stop": ["a"] * 17}, 400, "stop", None),
    ("logit_bias bad key", {"prompt": [1], "logit_bias": {"x": 1}}, 400, "logit_bias", None),
    ("logit_bias out of range", {"prompt": [1], "logit_bias": {"3": 500}}, 400, "logit_bias", None),
    ("stream_options without stream", {"prompt": [1], "stream_options": {"include_usage": True}},
     400, "stream_options", None),
    ("stream not bool", {"prompt": [1], "stream": "yes"}, 400, "stream", None),
    ("too long for context", {"prompt": [1] * 10, "max_tokens": 100000}, 400, None,
     "maximum context length"),
]


@pytest.mark.parametrize("name,body,status,param,fragment", BAD, ids=[b[0] for b in BAD])
def test_bad_completion_requests(server, name, body, status, param, fragment):
    assert_error(post(server, "/v1/completions", body), status, param, fragment)


def test_unknown_model(server):
    err = assert_error(post(server, "/v1/completions", {"model": "gpt-9", "prompt": [1]}), 404)
    assert err["code"] == "model_not_found"


def test_body_over_limit(server):
    big = json.dumps({"prompt": "x" * (5 << 20)})
    assert_error(post(server, "/v1/completions", big), 413)


def test_still_serving_after_errors(server):
    for _, body, *_ in BAD:
        post(server, "/v1/completions", body)
    r = post(server, "/v1/completions", {"prompt": [3, 4], "max_tokens": 2})
    assert r.status_code == 200, r.text
    assert requests.get(server.base + "/health").status_code == 200


def test_greedy_chat_equals_logits_argmax(server, tmp_path):
    """A greedy chat request yields exactly the tokens of argmax decoding with `seekd logits`
    in the server's arithmetic (numerics auto, the serving default: ref on the CPU for this float fixture)."""
    import subprocess

    import numpy as np

    from conftest import BINARIES

    messages = [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Name three colours <｜Assistant｜> please."}]
    prompt = post(server, "/tokenize", {"messages": messages}).json()["tokens"]
    r = post(server, "/v1/chat/completions", {
        "messages": messages, "max_tokens": 8, "temperature": 0, "ignore_eos": True,
        "logprobs": True, "return_tokens_as_token_ids": True})
    assert r.status_code == 200, r.text
    got = [int(e["token"].split(":")[1]) for e in r.json()["choices"][0]["logprobs"]["content"]]
    ids = list(prompt)
    for _ in range(len(got)):
        out = tmp_path / "l.npy"
        subprocess.run([str(BINARIES["release"]), "logits", "--model", str(SERVE_MODEL),
                        "--tokens", ",".join(map(str, ids)), "--out", str(out),
                        "--numerics", "auto"], check=True)
        ids.append(int(np.load(out)[-1].argmax()))
    assert got == ids[len(prompt):]
    # the user's control-token spelling stayed text: the prompt holds one Assistant marker only
    assistant = post(server, "/tokenize", {"prompt": "<｜Assistant｜>",
                                           "parse_special_tokens": True,
                                           "add_special_tokens": False}).json()["tokens"]
    assert len(assistant) == 1 and prompt.count(assistant[0]) == 1


def test_stop_strings_over_http(server):
    base = {"prompt": [7, 8, 9], "max_tokens": 30, "temperature": 0, "ignore_eos": True}
    full = post(server, "/v1/completions", base).json()["choices"][0]["text"]
    assert len(full) > 6
    stop = full[3:6]
    r = post(server, "/v1/completions", dict(base, stop=[stop])).json()["choices"][0]
    assert r["finish_reason"] == "stop"
    assert r["text"] == full[:full.index(stop)] and stop not in r["text"]
    # streamed, the same text arrives in pieces and the stop string never leaks
    with requests.post(server.base + "/v1/completions", json=dict(base, stop=[stop], stream=True),
                       stream=True, timeout=60) as s:
        pieces = [json.loads(line[6:])["choices"][0]["text"] for line in s.iter_lines()
                  if line.startswith(b"data: {")]
    assert "".join(pieces) == r["text"]


def test_queue_full_is_503(binary):
    """With room for one queued request, a burst gets 503 + Retry-After for the rest."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from conftest import TOKENIZER, Server
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--max-queued-requests", "1", "--max-num-seqs", "1", "--max-model-len", "8192",
                "--allow-long-max-model-len"))
    try:
        body = {"prompt": [1, 2], "max_tokens": 3000, "ignore_eos": True}
        with ThreadPoolExecutor(8) as ex:
            codes = list(ex.map(lambda _: requests.post(s.base + "/v1/completions", json=body,
                                                        timeout=300), range(8)))
        statuses = sorted(r.status_code for r in codes)
        assert 200 in statuses and 503 in statuses, statuses
        busy = next(r for r in codes if r.status_code == 503)
        assert busy.headers["Retry-After"] and busy.json()["error"]["code"] == "server_busy"
    finally:
        s.stop()


def test_request_timeout(binary):
    import os

    from conftest import TOKENIZER, Server
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--request-timeout", "300ms", "--max-model-len", "8192",
                "--allow-long-max-model-len"))
    try:
        # 4 x 8,000 tokens: seconds of work even for the fast backend, never 300 ms (and all
        # four fit the 64 MiB KV cache side by side, as admission requires)
        r = requests.post(s.base + "/v1/completions", timeout=60,
                          json={"prompt": [1], "max_tokens": 8000, "ignore_eos": True,
                                "n": 4})
        assert r.status_code == 408 and r.json()["error"]["code"] == "request_timeout"
        assert requests.get(s.base + "/health").status_code == 200
    finally:
        s.stop()


def test_default_max_tokens(binary):
    import os

    from conftest import TOKENIZER, Server
    s = Server(binary, dict(os.environ), SERVE_MODEL, TOKENIZER,
               ("--default-max-tokens", "3", "--no-enable-prefix-caching"))
    try:
        for path, body in (("/v1/completions", {"prompt": [1, 2]}),
                           ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})):
            r = requests.post(s.base + path, json=dict(body, ignore_eos=True), timeout=60).json()
            assert r["usage"]["completion_tokens"] == 3
        # prefix caching is off: a repeated long prompt finds nothing cached
        long = {"prompt": list(range(10, 150)), "max_tokens": 1}
        requests.post(s.base + "/v1/completions", json=long, timeout=60)
        again = requests.post(s.base + "/v1/completions", json=long, timeout=60).json()
        assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    finally:
        s.stop()
