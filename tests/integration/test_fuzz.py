"""A bounded, seeded fuzz of request bodies: mutated valid requests of every endpoint. Each must
get a well-formed reply (an OpenAI error object for 4xx), never a crash or a hang, and the
server must keep serving. Runs against the ASan/UBSan build too."""
import json
import random

import requests

VALID = [
    ("/v1/completions", {"prompt": "Hello", "max_tokens": 3, "temperature": 0.5, "n": 2,
                         "stop": ["x"], "logprobs": 2, "stream": False, "seed": 3}),
    ("/v1/completions", {"prompt": [[1, 2], [3]], "max_tokens": 2, "echo": True}),
    ("/v1/chat/completions", {"messages": [{"role": "system", "content": "s"},
                                           {"role": "user", "content": "hi"}],
                              "max_tokens": 3, "top_p": 0.9, "top_k": 5, "logprobs": True,
                              "top_logprobs": 2, "logit_bias": {"5": 1.5}}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": [{"type": "text",
                                                                           "text": "a"}]}],
                              "max_tokens": 2, "stream": True,
                              "stream_options": {"include_usage": True}}),
    ("/tokenize", {"prompt": "abc"}),
    ("/detokenize", {"tokens": [1, 2, 3]}),
]

ODD = [None, True, False, 0, -1, 1, 2 ** 31, -2 ** 63, 1e308, -0.0, 0.5, "", "x" * 300,
       "\u0000", "\ud7ff", "<｜end▁of▁sentence｜>", [], [1], [[]], {}, {"a": 1}, [None]]


def mutate(obj, rng):
    if isinstance(obj, dict) and obj and rng.random() < 0.8:
        k = rng.choice(list(obj))
        out = dict(obj)
        r = rng.random()
        if r < 0.15:
            del out[k]
        elif r < 0.6:
            out[k] = rng.choice(ODD)
        else:
            out[k] = mutate(obj[k], rng)
        return out
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        out = list(obj)
        i = rng.randrange(len(out))
        out[i] = mutate(out[i], rng) if rng.random() < 0.5 else rng.choice(ODD)
        return out
    return rng.choice(ODD)


def test_fuzz_bodies(server):
    rng = random.Random(20261129)
    for i in range(300):
        path, body = rng.choice(VALID)
        sent = mutate(body, rng)
        data = json.dumps(sent)
        if rng.random() < 0.1:
            cut = rng.randrange(len(data) + 1)
            data = data[:cut]
        r = requests.post(server.base + path, data=data, timeout=60,
                          headers={"Content-Type": "application/json"})
        assert r.status_code in (200, 400, 404, 413), (r.status_code, data, r.text)
        if r.status_code != 200:
            err = r.json()["error"]
            assert err["message"] and set(err) == {"message", "type", "param", "code"}, data
    assert requests.get(server.base + "/health").status_code == 200
