"""`seekd serve` on GGUF files: the tokenizer and chat template come from the file, generation
stops at the template's end-of-turn token, and a broken or unsupported file is refused at start
with one error line naming the file and the key or tensor (the ASan build too)."""
import json
import shutil
import subprocess

import pytest
import requests

from conftest import FIXTURES, Server, free_port

GGUF = FIXTURES / "gguf"
TOKENS = json.loads((GGUF / "tokens.json").read_text())


@pytest.fixture(scope="module")
def llama(binary):
    s = Server(binary, {}, GGUF / "llama-legacy.gguf")
    yield s
    s.stop()


def test_model_name_and_template(llama):
    models = requests.get(llama.base + "/v1/models", timeout=10).json()
    assert models["data"][0]["id"] == "llama-legacy"
    for case in TOKENS["chat"]:
        if case["template"] != "chatml":
            continue
        r = requests.post(llama.base + "/tokenize", timeout=10, json={
            "messages": case["messages"], "add_generation_prompt": case["generation"]})
        assert r.status_code == 200, r.text
        assert r.json()["tokens"] == case["ids"], case["text"]


def test_chat_completion_stops_at_end_of_turn(llama):
    """Random weights: the text is noise, but the request runs through template, engine and
    detokenizer; with <|im_end|> (id 3401) forced likely the reply ends on it."""
    r = requests.post(llama.base + "/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "temperature": 0,
        "logit_bias": {"3401": 100}})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["message"]["content"] == ""
    r = requests.post(llama.base + "/v1/completions", timeout=60, json={
        "prompt": "Hello", "max_tokens": 5, "temperature": 0, "stream": False})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] >= 1


TOOL = {"type": "function", "function": {"name": "weather", "description": "The weather now",
        "parameters": {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}},
                       "required": ["unit"], "additionalProperties": False}}}


def test_chatml_tools_in_hermes_form(llama):
    """ChatML renders the tools and past calls as Hermes text; tool_choice "required" (one call)
    makes the (random) model's whole answer a valid call, parsed back out of the <tool_call>
    form."""
    r = requests.post(llama.base + "/tokenize", timeout=60, json={
        "messages": [{"role": "user", "content": "x"},
                     {"role": "assistant", "content": "", "tool_calls": [
                         {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}],
    })
    assert r.status_code == 200, r.text
    r = requests.post(llama.base + "/detokenize", timeout=60, json={"tokens": r.json()["tokens"]})
    assert '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>' in r.json()["prompt"]
    usage = {}
    for tools in ([], [TOOL]):
        r = requests.post(llama.base + "/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 64, "temperature": 0,
            **({"tools": tools, "tool_choice": "required", "parallel_tool_calls": False} if tools else {})})
        assert r.status_code == 200, r.text
        usage[len(tools)] = r.json()["usage"]["prompt_tokens"]
    assert usage[1] > usage[0] + 40  # the tools are in the prompt
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls", choice
    call = choice["message"]["tool_calls"][0]["function"]
    assert call["name"] == "weather" and json.loads(call["arguments"]) in ({"unit": "c"}, {"unit": "f"})


@pytest.mark.parametrize("name", ["deepseek2-mla", "deepseek2-legacy", "qwen2-kquant"])
def test_serves_every_fixture(binary, name):
    """Each with the KV cache as a GGUF model gets it by default: F16, as llama.cpp keeps it."""
    s = Server(binary, {}, GGUF / f"{name}.gguf", args=("--kv-cache-dtype", "auto"))
    try:
        assert " blocks of F16 " in s.output(), s.output()
        r = requests.post(s.base + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 4})
        assert r.status_code == 200, r.text
    finally:
        s.stop()


def start_fails(binary, model, *args):
    p = subprocess.run([binary, "serve", "--port", str(free_port()), "--model", str(model), *args],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    errors = [l for l in p.stderr.splitlines() if " error " in l]
    assert len(errors) == 1, p.stderr
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr
    return errors[0]


def test_truncated_gguf_refused(binary, tmp_path):
    f = tmp_path / "cut.gguf"
    data = (GGUF / "qwen2-kquant.gguf").read_bytes()
    f.write_bytes(data[: len(data) - 1000])
    line = start_fails(binary, f)
    assert "cut.gguf" in line and "tensor '" in line and "past the end" in line


def test_unsupported_type_refused(binary, tmp_path):
    """A tensor whose ggml type seekd does not compute with (here IQ2_XXS, id 16)."""
    data = bytearray((GGUF / "llama-legacy.gguf").read_bytes())
    name = b"blk.0.ffn_up.weight"
    at = data.index(name) + len(name)      # name, then n_dims (u32), dims (u64 each), type (u32)
    n_dims = int.from_bytes(data[at:at + 4], "little")
    t = at + 4 + 8 * n_dims
    data[t:t + 4] = (16).to_bytes(4, "little")
    f = tmp_path / "iq.gguf"
    f.write_bytes(bytes(data))
    line = start_fails(binary, f)
    assert "tensor 'blk.0.ffn_up.weight'" in line and "IQ2_XXS is not supported" in line


def test_missing_tensor_named(binary, tmp_path):
    data = bytearray((GGUF / "llama-legacy.gguf").read_bytes())
    old = b"blk.1.attn_v.weight"
    data[data.index(old):data.index(old) + len(old)] = b"blk.1.attn_x.weight"
    f = tmp_path / "renamed.gguf"
    f.write_bytes(bytes(data))
    line = start_fails(binary, f)
    assert "tensor 'blk.1.attn_v.weight' is missing" in line


def test_unknown_template_refused(binary):
    """A template name seekd does not have is a usage error naming the choices."""
    p = subprocess.run([binary, "serve", "--port", str(free_port()), "--model",
                        str(GGUF / "llama-legacy.gguf"), "--chat-template", "vicuna"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "--chat-template: 'vicuna' is not one of: auto, deepseek-v3, deepseek-r1, chatml, llama3" in p.stderr


def test_not_a_model(binary, tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    line = start_fails(binary, f)
    assert "notes.txt" in line and "neither a checkpoint directory" in line
    shutil.rmtree(tmp_path)
