"""The official `openai` Python package against seekd, changing only base_url: sync, async,
streaming, and errors raised as the SDK's own exception types."""
import asyncio

import openai
import pytest

from conftest import SERVE_MODEL


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.base + "/v1", api_key="unused", max_retries=0)


def test_models_list(client):
    assert [m.id for m in client.models.list()] == [SERVE_MODEL.name]
    assert client.models.retrieve(SERVE_MODEL.name).id == SERVE_MODEL.name


def test_chat_sync(client):
    r = client.chat.completions.create(
        model=SERVE_MODEL.name, max_tokens=6, temperature=0,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "Hello there!"}])
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert isinstance(r.choices[0].message.content, str)
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_matches_non_stream(client):
    kw = dict(model=SERVE_MODEL.name, max_tokens=10, temperature=0,
              messages=[{"role": "user", "content": "Count to five."}])
    whole = client.chat.completions.create(**kw).choices[0].message.content
    chunks = list(client.chat.completions.create(stream=True,
                                                  stream_options={"include_usage": True}, **kw))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"] or finals == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


def test_completions_n_and_logprobs(client):
    r = client.completions.create(model=SERVE_MODEL.name, prompt="Once upon a time", n=3,
                                  max_tokens=4, temperature=0.8, seed=7, logprobs=2)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    for c in r.choices:
        assert len(c.logprobs.tokens) == len(c.logprobs.token_logprobs) >= 1
        assert all(len(t) <= 2 for t in c.logprobs.top_logprobs)
    again = client.completions.create(model=SERVE_MODEL.name, prompt="Once upon a time", n=3,
                                      max_tokens=4, temperature=0.8, seed=7, logprobs=2)
    assert [c.text for c in again.choices] == [c.text for c in r.choices]


def test_async_concurrent(server):
    async def main():
        client = openai.AsyncOpenAI(base_url=server.base + "/v1", api_key="x", max_retries=0)
        reqs = [client.chat.completions.create(
            model=SERVE_MODEL.name, max_tokens=5, temperature=0,
            messages=[{"role": "user", "content": f"Question {i}"}]) for i in range(8)]
        out = await asyncio.gather(*reqs)
        await client.close()
        return out
    results = asyncio.run(main())
    assert len(results) == 8 and all(r.choices[0].message.content is not None for r in results)


def test_errors_are_sdk_exceptions(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=SERVE_MODEL.name, temperature=5,
                                       messages=[{"role": "user", "content": "x"}])
    assert e.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SERVE_MODEL.name, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SERVE_MODEL.name,
                                       messages=[{"role": "wizard", "content": "x"}])


def test_history_with_tools_and_parts(client):
    """Content parts, assistant tool calls and tool results go through the template."""
    r = client.chat.completions.create(model=SERVE_MODEL.name, max_tokens=3, messages=[
        {"role": "system", "content": [{"type": "text", "text": "You can call tools."}]},
        {"role": "user", "content": [{"type": "text", "text": "Weather in "},
                                     {"type": "text", "text": "Paris?"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
    ])
    assert r.choices[0].message.content is not None
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SERVE_MODEL.name, messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
