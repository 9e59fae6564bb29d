"""R1 serving: the template opens <think> in the prompt, so the model's output starts as
reasoning; text up to </think> goes to reasoning_content, the rest to content, streamed as
reasoning_content deltas. The random fixture model is steered with logit_bias."""
import json

import pytest
import requests

from conftest import FIXTURES, SERVE_MODEL, Server

R1_TOKENIZER = FIXTURES / "tokenizer" / "r1"


@pytest.fixture(scope="module")
def r1(seekd_env_module, binary):
    s = Server(binary, seekd_env_module, SERVE_MODEL, R1_TOKENIZER)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def seekd_env_module():
    import os
    return dict(os.environ)


def ids_of(server, text):
    r = requests.post(server.base + "/tokenize", json={"prompt": text, "parse_special_tokens": True,
                                                       "add_special_tokens": False})
    return r.json()["tokens"]


def test_prompt_opens_think(r1):
    toks = requests.post(r1.base + "/tokenize", json={
        "messages": [{"role": "user", "content": "2+2?"}]}).json()["tokens"]
    (think,) = ids_of(r1, "<think>")
    assert toks[-2:] == [think] + ids_of(r1, "\n")


def test_reasoning_then_content(r1):
    (end,) = ids_of(r1, "</think>")
    word = ids_of(r1, "Hello")
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0,
            "logit_bias": {str(end): 100}}
    msg = requests.post(r1.base + "/v1/chat/completions", json=body).json()["choices"][0]["message"]
    # the first token closes the (empty) reasoning; later ones are answer text
    assert msg["reasoning_content"] is None  # no reasoning text: null, as vLLM reports it
    assert msg["content"] == "</think>" * 3
    # with the bias on an ordinary word instead, everything stays reasoning
    body["logit_bias"] = {str(word[0]): 100}
    msg = requests.post(r1.base + "/v1/chat/completions", json=body).json()["choices"][0]["message"]
    assert msg["content"] == "" and msg["reasoning_content"].startswith("Hello")


def test_streamed_reasoning_deltas(r1):
    (word,) = ids_of(r1, "Hello")[:1]
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0,
            "logit_bias": {str(word): 100}, "stream": True}
    with requests.post(r1.base + "/v1/chat/completions", json=body, stream=True) as s:
        deltas = [json.loads(l[6:])["choices"][0]["delta"] for l in s.iter_lines()
                  if l.startswith(b"data: {")]
    assert deltas[0] == {"role": "assistant", "content": ""}
    text = "".join(d.get("reasoning_content", "") for d in deltas)
    assert text.startswith("Hello") and all("content" not in d for d in deltas[1:])


def test_structured_output_starts_after_reasoning(r1):
    """The grammar leaves the reasoning free and constrains the answer after </think>."""
    (end,) = ids_of(r1, "</think>")
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}},
              "required": ["n"]}
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 30, "seed": 1,
            "logit_bias": {str(end): 100},
            "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}}
    r = requests.post(r1.base + "/v1/chat/completions", json=body).json()["choices"][0]
    assert r["finish_reason"] == "stop"
    assert r["message"]["reasoning_content"] is None
    assert 0 <= json.loads(r["message"]["content"])["n"] <= 9
