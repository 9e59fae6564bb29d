"""Tool calling and parse() with the official openai SDK against the DeepSeek-template fixture:
tool_choice required / named constrain the calls so their arguments always fit the function's
parameters schema; auto leaves the model free until it opens a call (steered here with
logit_bias, the model's weights being random), then the parser finds it; a full loop (call,
tool result, answer); streamed calls equal to whole ones; n = 3; parse() with a Pydantic
model."""
import json
from typing import Annotated, List, Literal

import jsonschema
import openai
import pytest
import requests
from pydantic import BaseModel, Field

from conftest import SERVE_MODEL

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 10},
                                            "unit": {"enum": ["c", "f"]}},
           "required": ["city", "unit"], "additionalProperties": False}
NOW = {"type": "object", "properties": {}}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                           "parameters": WEATHER}},
         {"type": "function", "function": {"name": "now", "parameters": NOW}}]
PARAMS = {"get_weather": WEATHER, "now": NOW}
ASK = [{"role": "user", "content": "Weather in Oslo?"}]


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)


def marker(server, text):
    r = requests.post(server.base + "/tokenize", json={"prompt": text, "parse_special_tokens": True,
                                                       "add_special_tokens": False})
    (tid,) = r.json()["tokens"]
    return tid


def check_calls(calls):
    assert calls, "no tool calls"
    for c in calls:
        assert c.type == "function" and c.id.startswith("call_")
        assert c.function.name in PARAMS
        jsonschema.validate(json.loads(c.function.arguments), PARAMS[c.function.name])


def test_required_call_then_answer(client):
    kw = dict(model=SERVE_MODEL.name, tools=TOOLS, max_tokens=120, seed=1)
    r = client.chat.completions.create(messages=ASK, tool_choice="required",
                                       parallel_tool_calls=False, **kw)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    check_calls(choice.message.tool_calls)
    call = choice.message.tool_calls[0]
    history = ASK + [{"role": "assistant", "content": None,
                      "tool_calls": [{"id": call.id, "type": "function",
                                      "function": {"name": call.function.name,
                                                   "arguments": call.function.arguments}}]},
                     {"role": "tool", "tool_call_id": call.id, "content": "12 C, sunny"}]
    answer = client.chat.completions.create(messages=history, tool_choice="none", **kw)
    assert answer.choices[0].message.tool_calls is None
    assert isinstance(answer.choices[0].message.content, str)
    assert answer.choices[0].finish_reason in ("stop", "length")


def test_named_function(client):
    for seed in range(3):
        r = client.chat.completions.create(
            model=SERVE_MODEL.name, messages=ASK, tools=TOOLS, max_tokens=120, seed=seed,
            parallel_tool_calls=False,
            tool_choice={"type": "function", "function": {"name": "get_weather"}})
        calls = r.choices[0].message.tool_calls
        check_calls(calls)
        assert {c.function.name for c in calls} == {"get_weather"}


def test_auto_parses_the_models_own_calls(server, client):
    begin = marker(server, "<｜tool▁calls▁begin｜>")
    kw = dict(model=SERVE_MODEL.name, messages=ASK, tools=TOOLS, max_tokens=150, seed=4,
              parallel_tool_calls=False)
    r = client.chat.completions.create(logit_bias={str(begin): 100}, **kw)
    assert r.choices[0].finish_reason == "tool_calls"
    check_calls(r.choices[0].message.tool_calls)
    # never opening a call: the reply is plain content
    r = client.chat.completions.create(logit_bias={str(begin): -100}, **kw)
    assert r.choices[0].message.tool_calls is None
    assert isinstance(r.choices[0].message.content, str) and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")


def test_streamed_calls_equal_whole(client):
    kw = dict(model=SERVE_MODEL.name, messages=ASK, tools=TOOLS, max_tokens=200, seed=9,
              tool_choice="required", parallel_tool_calls=False)
    whole = client.chat.completions.create(**kw).choices[0]
    calls, finish = {}, None
    for chunk in client.chat.completions.create(stream=True, **kw):
        d = chunk.choices[0].delta
        for tc in d.tool_calls or []:
            if tc.id:  # the first piece: id, type and name, no arguments yet
                assert tc.index not in calls and tc.function.name and tc.function.arguments == ""
                calls[tc.index] = {"id": tc.id, "name": tc.function.name, "args": ""}
            else:
                calls[tc.index]["args"] += tc.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == whole.finish_reason == "tool_calls"
    assert [(c["name"], c["args"]) for _, c in sorted(calls.items())] == \
           [(c.function.name, c.function.arguments) for c in whole.message.tool_calls]


def test_parallel_calls(client):
    """parallel_tool_calls (the default): one call or more, each valid, until the model stops or
    the budget runs out (then the last call may be cut short)."""
    r = client.chat.completions.create(model=SERVE_MODEL.name, messages=ASK, tools=TOOLS,
                                       max_tokens=200, seed=2, tool_choice="required")
    c = r.choices[0]
    calls = c.message.tool_calls
    if c.finish_reason == "length":
        calls = calls[:-1]
    else:
        assert c.finish_reason == "tool_calls"
    check_calls(calls)


def test_n3_each_choice_calls(client):
    r = client.chat.completions.create(model=SERVE_MODEL.name, messages=ASK, tools=TOOLS, n=3,
                                       max_tokens=200, seed=3, tool_choice="required",
                                       parallel_tool_calls=False)
    assert len(r.choices) == 3
    for c in r.choices:
        assert c.finish_reason == "tool_calls"
        check_calls(c.message.tool_calls)


def test_auto_with_a_json_format(client):
    """tool_choice auto plus a JSON schema: the reply is either such a document or calls."""
    answer = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    kinds = set()
    for seed in range(6):
        r = client.chat.completions.create(
            model=SERVE_MODEL.name, messages=ASK, tools=TOOLS, max_tokens=150, seed=seed,
            parallel_tool_calls=False,
            response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": answer}})
        m = r.choices[0].message
        if m.tool_calls:
            check_calls(m.tool_calls)
            kinds.add("calls")
        else:
            jsonschema.validate(json.loads(m.content), answer)
            kinds.add("json")
    assert kinds


class Weather(BaseModel):
    city: str = Field(max_length=8)
    temperature: int = Field(ge=-60, le=60)
    unit: Literal["celsius", "fahrenheit"]
    notes: List[Annotated[str, Field(max_length=6)]] = Field(max_length=2)


def test_parse_with_a_pydantic_model(client):
    for seed in range(3):
        r = client.chat.completions.parse(model=SERVE_MODEL.name, messages=ASK, max_tokens=200,
                                          seed=seed, response_format=Weather)
        w = r.choices[0].message.parsed
        assert isinstance(w, Weather)
        assert len(w.city) <= 8 and -60 <= w.temperature <= 60 and len(w.notes) <= 2
