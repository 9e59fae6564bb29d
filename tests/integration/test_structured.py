"""Structured outputs against the real daemon on the random-weight fixture: 20 bounded JSON
schemas, 200 requests (plain, streamed, n = 3, concurrent), every reply parsed and validated
with the jsonschema package (formats checked); the same under preemption; regular expressions,
choices, GBNF grammars, json_object, vLLM's guided_* spellings and /v1/completions. A model with
random weights writes whatever the grammar lets it, so a valid reply is the grammar's doing."""
import json
import random
import re
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server

FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER

S = {"type": "string", "maxLength": 6}
I = {"type": "integer", "minimum": -50, "maximum": 50}

SCHEMAS = [
    {"type": "object", "properties": {"name": S, "age": {"type": "integer", "minimum": 0, "maximum": 120},
                                      "email": {"type": "string", "format": "email"}},
     "required": ["name", "age", "email"]},
    {"type": "object", "properties": {"status": {"enum": ["ok", "fail", "unknown"]},
                                      "version": {"const": 2}, "flag": {"type": "boolean"}},
     "required": ["status", "version", "flag"]},
    {"type": "object", "properties": {
        "user": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 9999},
                                                  "tags": {"type": "array", "items": {"type": "string", "maxLength": 5},
                                                           "maxItems": 3}},
                 "required": ["id", "tags"]},
        "active": {"type": "boolean"}}, "required": ["user", "active"]},
    {"type": "object", "properties": {"value": {"anyOf": [{"type": "integer", "minimum": -10, "maximum": 10},
                                                          S, {"type": "null"}]}},
     "required": ["value"]},
    {"type": "object", "properties": {"x": {"type": ["number", "null"], "minimum": -1.5, "maximum": 2.25}},
     "required": ["x"]},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 99}, "minItems": 1, "maxItems": 5},
    {"type": "array", "prefixItems": [{"type": "string", "maxLength": 4},
                                      {"type": "number", "minimum": 0, "maximum": 1}, {"type": "boolean"}],
     "items": False, "minItems": 3},
    {"$defs": {"pt": {"type": "object", "properties": {"x": {"type": "integer", "minimum": -5, "maximum": 5},
                                                       "y": I}, "required": ["x", "y"]}},
     "type": "object", "properties": {"a": {"$ref": "#/$defs/pt"}, "b": {"$ref": "#/$defs/pt"}},
     "required": ["a", "b"]},
    {"type": "object", "properties": {"d": {"type": "string", "format": "date"},
                                      "t": {"type": "string", "format": "time"},
                                      "dt": {"type": "string", "format": "date-time"},
                                      "u": {"type": "string", "format": "uuid"}},
     "required": ["d", "t", "dt", "u"]},
    {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
                                      "ref": {"type": "string", "pattern": "x[0-9]+", "maxLength": 10}},
     "required": ["code", "ref"]},
    {"type": "object", "properties": {"s": {"type": "string", "minLength": 3, "maxLength": 6}},
     "required": ["s"], "additionalProperties": False},
    {"type": "object", "properties": {"a": I, "b": {"type": "string", "maxLength": 3}, "c": {"type": "boolean"},
                                      "d": {"type": "null"}}, "required": ["c"]},
    {"type": "object", "properties": {"p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                                      "q": {"type": "integer", "exclusiveMinimum": -3, "exclusiveMaximum": 3}},
     "required": ["p", "q"]},
    {"type": "object", "properties": {"matrix": {"type": "array", "maxItems": 3, "items": {
        "type": "array", "maxItems": 3, "items": {"type": "integer", "minimum": 0, "maximum": 9}}}},
     "required": ["matrix"]},
    {"type": "object", "properties": {"shape": {"oneOf": [
        {"type": "object", "properties": {"kind": {"const": "circle"},
                                          "r": {"type": "number", "minimum": 0, "maximum": 10}},
         "required": ["kind", "r"], "additionalProperties": False},
        {"type": "object", "properties": {"kind": {"const": "square"},
                                          "side": {"type": "integer", "minimum": 1, "maximum": 5}},
         "required": ["kind", "side"], "additionalProperties": False}]}}, "required": ["shape"]},
    {"type": "object", "properties": {"v": {"enum": [1, "two", 3.5, True, None, {"k": "v"}, [1, 2]]}},
     "required": ["v"]},
    {"type": "object", "properties": {"na\u00efve": {"type": "string", "maxLength": 4},
                                      "quote\"key": {"type": "integer", "minimum": 0, "maximum": 9},
                                      "tab\tkey": {"type": "boolean"}},
     "required": ["na\u00efve", "quote\"key", "tab\tkey"]},
    {"$defs": {"Inner": {"type": "object", "properties": {"z": {"type": "boolean"}}, "required": ["z"],
                         "title": "Inner"}},
     "type": "object", "title": "Outer",
     "properties": {"inner": {"allOf": [{"$ref": "#/$defs/Inner"}], "description": "wrapped"},
                    "n": {"type": "integer", "minimum": 1, "maximum": 3, "default": 2}},
     "required": ["inner", "n"]},
    {"type": "string", "format": "date-time"},
    {"type": "integer", "minimum": -1000, "maximum": 1000},
]
assert len(SCHEMAS) == 20

PROMPT = [{"role": "user", "content": "Reply in JSON."}]


def chat(base, body, timeout=600):
    r = requests.post(base + "/v1/chat/completions", json=body, timeout=timeout)
    assert r.status_code == 200, r.text
    return r.json()


def stream_chat(base, body):
    """The streamed contents and finish reasons, by choice index."""
    text, finish = {}, {}
    with requests.post(base + "/v1/chat/completions", json={**body, "stream": True}, stream=True,
                       timeout=600) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines():
            if not line.startswith(b"data: {"):
                continue
            ev = json.loads(line[6:])
            assert "error" not in ev, ev
            for c in ev["choices"]:
                text[c["index"]] = text.get(c["index"], "") + (c["delta"].get("content") or "")
                if c["finish_reason"]:
                    finish[c["index"]] = c["finish_reason"]
    return [text[i] for i in sorted(text)], [finish[i] for i in sorted(finish)]


def schema_body(schema, **kw):
    return {"messages": PROMPT, "max_tokens": 400,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "reply", "schema": schema, "strict": True}}, **kw}


def valid(text, schema):
    doc = json.loads(text)
    jsonschema.validate(doc, schema, format_checker=FORMATS)
    return doc


def one_request(base, k, schema):
    """Request k of a schema: plain, streamed, or n = 3; different seeds and temperatures."""
    kw = {"seed": 1000 + k, "temperature": [1.0, 0.7, 1.5, 0][k % 4]}
    if k % 10 in (7, 8, 9):
        kw["n"] = 3
    if k % 10 in (4, 5, 6, 9):
        texts, finishes = stream_chat(base, schema_body(schema, **kw))
    else:
        r = chat(base, schema_body(schema, **kw))
        texts = [c["message"]["content"] for c in r["choices"]]
        finishes = [c["finish_reason"] for c in r["choices"]]
    assert len(texts) == kw.get("n", 1)
    for t, f in zip(texts, finishes):
        assert f == "stop", (f, t)
        valid(t, schema)
    return len(texts)


def test_200_requests_over_20_schemas(server):
    jobs = [(k, s) for s in SCHEMAS for k in range(10)]
    with ThreadPoolExecutor(16) as ex:
        n = sum(ex.map(lambda j: one_request(server.base, j[0], j[1]), jobs))
    assert n == 20 * (7 * 1 + 3 * 3)  # n = 3 on 3 of every 10 requests


def test_streamed_equals_whole(server):
    body = schema_body(SCHEMAS[2], seed=5, temperature=0.9)
    whole = chat(server.base, body)["choices"][0]["message"]["content"]
    texts, finishes = stream_chat(server.base, body)
    assert texts == [whole] and finishes == ["stop"]
    valid(whole, SCHEMAS[2])


def test_under_preemption(seekd_env, binary):
    """48 concurrent constrained requests on a KV pool too small for them: sequences are
    preempted and recomputed, their matchers go on where they were, every reply validates.
    The grammars are compiled first and every prompt is long and distinct, so the requests
    reach the scheduler together and their prompts alone overfill the pool: preemption
    happens however fast the machine is."""
    block_bytes = 16 * 3 * (96 + 16) * 4
    small = Server(binary, seekd_env, SERVE_MODEL, TOKENIZER,
                   ("--block-size", "16", "--kv-cache-memory", str(60 * block_bytes),
                    "--max-num-seqs", "48", "--max-model-len", "512"))
    try:
        for schema in SCHEMAS:  # fill the grammar cache
            chat(small.base, schema_body(schema, max_tokens=1))
        words = "alpha beta gamma delta river stone cloud paper green quiet seven orbit".split()

        def body(k, schema):
            rng = random.Random(k)
            text = " ".join(rng.choice(words) for _ in range(25))
            b = schema_body(schema, seed=k, n=1 + k % 2, max_tokens=360)
            b["messages"] = [{"role": "user", "content": f"{k}: {text}. Reply in JSON."}]
            return b

        def run(j):
            k, schema = j
            r = chat(small.base, body(k, schema))
            for c in r["choices"]:
                assert c["finish_reason"] == "stop", c
                valid(c["message"]["content"], schema)

        with ThreadPoolExecutor(48) as ex:
            list(ex.map(run, [(k, SCHEMAS[k % 20]) for k in range(48)]))
        m = requests.get(small.base + "/metrics").text
        pre = float(re.search(r"^seekd:num_preemptions_total (\S+)$", m, re.M).group(1))
        assert pre > 0
    finally:
        small.stop()


def test_json_object(server):
    for seed in range(4):
        r = chat(server.base, {"messages": PROMPT, "max_tokens": 60, "seed": seed,
                               "response_format": {"type": "json_object"}})
        c = r["choices"][0]
        if c["finish_reason"] == "stop":
            assert isinstance(json.loads(c["message"]["content"]), dict)
        else:  # unbounded: may run out of tokens, but what came is the start of an object
            assert c["message"]["content"].startswith("{")


def test_recursive_schema(server):
    tree = {"$defs": {"node": {"type": "object", "properties": {
        "v": {"type": "integer", "minimum": 0, "maximum": 9},
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
        "required": ["v", "kids"]}}, "$ref": "#/$defs/node"}
    stopped = 0
    for seed in range(6):
        c = chat(server.base, schema_body(tree, seed=seed, max_tokens=150))["choices"][0]
        if c["finish_reason"] == "stop":
            valid(c["message"]["content"], tree)
            stopped += 1
        else:
            assert c["message"]["content"].startswith('{"v":') or c["message"]["content"].startswith('{"v": ')
    assert stopped >= 1


def test_regex_choice_grammar(server):
    base = {"messages": PROMPT, "max_tokens": 60}
    for seed in range(3):
        out = chat(server.base, {**base, "seed": seed,
                                 "structured_outputs": {"regex": r"[a-z]{2,5}-[0-9]{1,3}(\.[0-9])?"}})
        assert re.fullmatch(r"[a-z]{2,5}-[0-9]{1,3}(\.[0-9])?", out["choices"][0]["message"]["content"])
        out = chat(server.base, {**base, "seed": seed,
                                 "structured_outputs": {"choice": ["positive", "negative", "neutral"]}})
        assert out["choices"][0]["message"]["content"] in ("positive", "negative", "neutral")
        gbnf = 'root ::= "(" num (", " num){0,3} ")"\nnum ::= "-"? [1-9] [0-9]?\n'
        out = chat(server.base, {**base, "seed": seed, "structured_outputs": {"grammar": gbnf}})
        assert re.fullmatch(r"\(-?[1-9][0-9]?(, -?[1-9][0-9]?){0,3}\)", out["choices"][0]["message"]["content"])


def test_guided_spellings_and_completions(server):
    r = chat(server.base, {"messages": PROMPT, "max_tokens": 60, "guided_choice": ["yes", "no"],
                           "guided_decoding_backend": "xgrammar"})
    assert r["choices"][0]["message"]["content"] in ("yes", "no")
    r = chat(server.base, {"messages": PROMPT, "max_tokens": 100, "guided_json": json.dumps(SCHEMAS[1])})
    valid(r["choices"][0]["message"]["content"], SCHEMAS[1])
    r = chat(server.base, {"messages": PROMPT, "max_tokens": 30, "guided_regex": "[0-9]{4}"})
    assert re.fullmatch("[0-9]{4}", r["choices"][0]["message"]["content"])
    for stream in (False, True):
        body = {"prompt": "JSON:", "max_tokens": 200, "seed": 3, "stream": stream,
                "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMAS[0]}}}
        r = requests.post(server.base + "/v1/completions", json=body, timeout=600)
        assert r.status_code == 200, r.text
        if stream:
            text = "".join(json.loads(l[6:])["choices"][0]["text"] for l in r.content.decode("utf-8").splitlines()
                           if l.startswith("data: {"))
        else:
            text = r.json()["choices"][0]["text"]
        valid(text, SCHEMAS[0])


def test_new_schemas_alongside_plain_requests(server):
    """Schemas never seen before (their masks computed as they are first needed) run in the same
    batches as an unconstrained request, which is unaffected."""
    rng = random.Random(3)
    fresh = [{"type": "object", "properties": {f"k{rng.randrange(10**9)}": {"type": "string", "maxLength": 20}},
              "additionalProperties": False, "required": []} for _ in range(8)]
    with ThreadPoolExecutor(9) as ex:
        plain = ex.submit(chat, server.base, {"messages": PROMPT, "max_tokens": 120, "ignore_eos": True})
        results = list(ex.map(lambda s: chat(server.base, schema_body(s)), fresh))
        assert plain.result()["choices"][0]["finish_reason"] == "length"
        assert plain.result()["usage"]["completion_tokens"] == 120
    for s, r in zip(fresh, results):
        valid(r["choices"][0]["message"]["content"], s)
