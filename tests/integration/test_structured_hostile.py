"""Hostile and broken output formats: syntax errors, unsupported keywords, $ref cycles, nesting
10,000 deep, huge enums, catastrophic and exploding regular expressions, broken GBNF, grammars
too ambiguous to run, bad tools. Each gets a 400 naming the param and the problem, compiles (or
gives up) within the limits, and the next valid request is served. Runs against the release and
the ASan/UBSan builds (Server.stop fails on any sanitizer report)."""
import json

import pytest
import requests

MSG = [{"role": "user", "content": "x"}]


def fmt(schema):
    return {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}}


def deep(n):
    s = {"type": "integer"}
    for _ in range(n):
        s = {"type": "array", "items": s}
    return s


BAD_SCHEMAS = [
    ({"type": 5}, "'type'"),
    ({"type": "object", "properties": {"a": {"type": "strng"}}}, "properties.a"),
    ({"not": {"type": "null"}}, "'not'"),
    ({"type": "integer", "multipleOf": 3}, "'multipleOf'"),
    ({"if": {}, "then": {}}, "'if'"),
    ({"type": "object", "patternProperties": {"^a": {}}}, "'patternProperties'"),
    ({"type": "array", "uniqueItems": True}, "'uniqueItems'"),
    ({"type": "object", "minProperties": 2}, "'minProperties'"),
    ({"type": "string", "pattern": "(a"}, "pattern"),
    ({"type": "string", "pattern": "[z-a]"}, "pattern"),
    ({"type": "string", "pattern": "(?<=x)y"}, "lookbehind"),
    ({"type": "string", "pattern": "(a)\\1"}, "backreference"),
    ({"type": "string", "pattern": "\\p{L}+"}, "Unicode property"),
    ({"$ref": "#"}, "matches nothing"),
    ({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "matches nothing"),
    ({"anyOf": [{"$ref": "#"}, {"type": "null"}]}, "left-recursive"),
    ({"$ref": "https://example.com/s.json"}, "local"),
    ({"$ref": "#/$defs/missing"}, "local"),
    (deep(100), "nested deeper"),
    ({"enum": list(range(20000))}, "'enum'"),
    ({"enum": ["x" * 200 + str(i) for i in range(9000)]}, "automaton states"),
    ({"type": "string", "maxLength": 10 ** 9}, "maxLength"),
    ({"type": "array", "minItems": 10 ** 6}, "minItems"),
    ({"type": "string", "pattern": "(a|b)*a(a|b){30}"}, "too complex"),
    ({"type": "string", "pattern": "x{100000}"}, "repetition"),
    ({"type": "string", "pattern": "((a{100}){100}){100}"}, ""),
    ({"type": "string", "pattern": "(.*a){12}", "maxLength": 20}, "too complex"),
    ({"type": "integer", "minimum": 10, "maximum": 5}, "minimum/maximum"),
    ({"type": "array", "minItems": 5, "maxItems": 2}, "minItems"),
    ({"type": "string", "minLength": 9, "maxLength": 2}, "minLength"),
    ({"allOf": [{"type": "string"}, {"maxLength": 3}]}, "'allOf'"),
    ({"type": "string", "pattern": "a", "format": "date"}, "format"),
    (False, "no value"),
]


def expect_400(server, body, param, words=""):
    r = requests.post(server.base + "/v1/chat/completions", json=body, timeout=300)
    assert r.status_code == 400, (r.status_code, r.text[:500])
    err = r.json()["error"]
    assert err["param"] == param, err
    assert words in err["message"], err
    return err["message"]


def still_serving(server):
    body = {"messages": MSG, "max_tokens": 40, "seed": 1,
            "response_format": fmt({"type": "object", "properties": {"ok": {"type": "boolean"}},
                                    "required": ["ok"]})}
    r = requests.post(server.base + "/v1/chat/completions", json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["choices"][0]["message"]["content"])["ok"] in (True, False)


@pytest.mark.parametrize("schema,words", BAD_SCHEMAS, ids=[str(i) for i in range(len(BAD_SCHEMAS))])
def test_bad_schema(server, schema, words):
    expect_400(server, {"messages": MSG, "response_format": fmt(schema)}, "response_format", words)
    still_serving(server)


def test_ten_thousand_deep(server):
    text = '{"type": "array", "items": ' * 10000 + '{"type": "integer"}' + "}" * 10000
    # as the request body itself: the JSON parser refuses the depth
    r = requests.post(server.base + "/v1/chat/completions", timeout=300,
                      data='{"messages": [{"role": "user", "content": "x"}], "response_format": '
                           '{"type": "json_schema", "json_schema": {"name": "t", "schema": ' + text + '}}}',
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    # as a string inside structured_outputs: the same, at the second parse
    expect_400(server, {"messages": MSG, "structured_outputs": {"json": text}}, "structured_outputs")
    still_serving(server)


def test_catastrophic_patterns_are_just_automata(server):
    for pattern in ["^(a+)+$", "^(a|aa)*b$", "^(\\w+\\s?)*$", "^(.*a){3}$"]:
        body = {"messages": MSG, "max_tokens": 60, "seed": 2,
                "response_format": fmt({"type": "string", "pattern": pattern, "maxLength": 20})}
        r = requests.post(server.base + "/v1/chat/completions", json=body, timeout=300)
        assert r.status_code == 200, r.text
    still_serving(server)


BAD_OTHERS = [
    ({"structured_outputs": {"regex": "(a"}}, "structured_outputs", "regex"),
    ({"structured_outputs": {"regex": "a", "choice": ["a"]}}, "structured_outputs", "one output format"),
    ({"structured_outputs": {"choice": []}}, "structured_outputs", "choice"),
    ({"structured_outputs": {"choice": [1, 2]}}, "structured_outputs", "strings"),
    ({"structured_outputs": {"grammar": "root ::= a\na ::= a \"x\"\n"}}, "structured_outputs", "matches nothing"),
    ({"structured_outputs": {"grammar": "root ::= a \"x\" | \"y\"\na ::= root | \"z\"\n"}}, "structured_outputs", "left-recursive"),
    ({"structured_outputs": {"grammar": "root ::= b\n"}}, "structured_outputs", "never defined"),
    ({"structured_outputs": {"grammar": "root ::= " + "(" * 10000 + "\"x\"" + ")" * 10000}}, "structured_outputs", "nested deeper"),
    ({"structured_outputs": {"grammar": "root ::= \"x\"\nitem ::= [\n"}}, "structured_outputs", "class is not closed"),
    ({"structured_outputs": {"json": "{not json"}}, "structured_outputs", "not valid JSON"),
    ({"structured_outputs": {"whitespace_pattern": " *", "json_object": True}}, "structured_outputs", "whitespace_pattern"),
    ({"guided_whitespace_pattern": " *"}, "guided_whitespace_pattern", "not supported"),
    ({"guided_regex": 5}, "guided_regex", "string"),
    ({"response_format": {"type": "xml"}}, "response_format", "xml"),
    ({"response_format": {"type": "json_schema"}}, "response_format", "json_schema"),
    ({"response_format": {"type": "json_object"}, "guided_regex": "a"}, "guided_regex", "one output format"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools", "name"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}] * 2}, "tools", "two tools"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function", "function": {"name": "g"}}}, "tool_choice", "'g'"),
    ({"tool_choice": "required"}, "tool_choice", "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "sometimes"}, "tool_choice", "none, auto"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"not": {}}}}}}], "tool_choice": "required"}, "tools", "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto", "structured_outputs": {"regex": "a"}}, "structured_outputs", "JSON"),
]


@pytest.mark.parametrize("extra,param,words", BAD_OTHERS, ids=[str(i) for i in range(len(BAD_OTHERS))])
def test_bad_formats_and_tools(server, extra, param, words):
    expect_400(server, {"messages": MSG, **extra}, param, words)
    still_serving(server)


def test_tools_only_on_chat(server):
    r = requests.post(server.base + "/v1/completions", timeout=60, json={
        "prompt": "x", "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "tools"


def test_too_ambiguous_to_run(server):
    """Five thousand rules all alive at the first byte: refused before anything is queued, by
    the ambiguity bound or, first, the compile budget."""
    rules = "\n".join(f'r{i} ::= "a"+ "{i}"' for i in range(5000))
    alts = " | ".join(f"r{i}" for i in range(5000))
    msg = expect_400(server, {"messages": MSG, "structured_outputs": {"grammar": f"root ::= {alts}\n{rules}\n"}},
                     "structured_outputs")
    assert "ambiguous" in msg or "too complex" in msg, msg
    still_serving(server)
