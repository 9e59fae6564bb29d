"""API keys (flag, file list, SEEKD_API_KEY), and CORS with configured origins."""
import os

import openai
import pytest
import requests

from conftest import SERVE_MODEL, TOKENIZER, Server


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, binary):
    cfg = tmp_path_factory.mktemp("cfg") / "seekd.yaml"
    cfg.write_text("api_keys:\n  - file-key\ncors_allowed_origins: [\"https://app.example\"]\n")
    env = dict(os.environ, SEEKD_API_KEY="env-key,env-key-2")
    s = Server(binary, env, SERVE_MODEL, TOKENIZER, ("--config", str(cfg)))
    s.key = "env-key"
    yield s
    s.stop()


def chat(base, key):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(base + "/v1/chat/completions", headers=headers, timeout=60,
                         json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1})


def test_keys(keyed):
    # SEEKD_API_KEY replaces the file's list (later sources win)
    assert chat(keyed.base, "env-key").status_code == 200
    assert chat(keyed.base, "env-key-2").status_code == 200
    for bad in (None, "file-key", "env-ke", "env-key-22", "x" * 1000):
        r = chat(keyed.base, bad)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert requests.get(keyed.base + "/health").status_code == 200  # exempt
    assert requests.get(keyed.base + "/v1/models").status_code == 401


def test_sdk_authentication_error(keyed):
    c = openai.OpenAI(base_url=keyed.base + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.models.list()
    c = openai.OpenAI(base_url=keyed.base + "/v1", api_key="env-key", max_retries=0)
    assert c.models.list().data[0].id == SERVE_MODEL.name


def test_cors(keyed):
    pre = requests.options(keyed.base + "/v1/chat/completions",
                           headers={"Origin": "https://app.example",
                                    "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in pre.headers["Access-Control-Allow-Headers"]
    r = requests.get(keyed.base + "/health", headers={"Origin": "https://app.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://app.example"
    r = requests.get(keyed.base + "/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
