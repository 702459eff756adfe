"""API keys, rate limits and budgets as the official `openai` package sees
them: its own exception types for 401 and 429, streaming usage charged."""

import json
import urllib.request

import openai
import pytest

from conftest import MODEL, run_server

KEY = "sy-python-policy-test-key"
LIMITED = "sy-python-policy-test-limited"
ADMIN = "python-policy-admin-token"
QUESTION = "What is the capital city of France? Answer in one word."


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    d = tmp_path_factory.mktemp("policies")
    cfg = d / "config.toml"
    cfg.write_text(
        f"""
[auth]
admin_token_env = "SY_PY_ADMIN"
[state]
path = "{d / 'state.jsonl'}"
[[keys]]
id = "main"
key_env = "SY_PY_KEY"
budget_usd = 10
budget_period = "daily"
[[keys]]
id = "limited"
key_env = "SY_PY_LIMITED"
rpm = 1
[prices.{MODEL}]
input_per_million = 100
output_per_million = 200
"""
    )
    env = {"SY_PY_KEY": KEY, "SY_PY_LIMITED": LIMITED, "SY_PY_ADMIN": ADMIN}
    yield from run_server("policies", ["--config", str(cfg)], env)


def client(base, key):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)


def spent(base):
    req = urllib.request.Request(base + "/admin/keys/main", headers={"Authorization": f"Bearer {ADMIN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["spend"]["spent_usd"]


def test_wrong_key_is_an_authentication_error(gated):
    with pytest.raises(openai.AuthenticationError) as e:
        client(gated, "sy-wrong").models.list()
    assert e.value.status_code == 401
    assert e.value.code == "invalid_api_key"


def test_rate_limit_is_a_rate_limit_error(gated):
    c = client(gated, LIMITED)
    c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert e.value.code == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_streamed_usage_is_charged(gated):
    before = spent(gated)
    stream = client(gated, KEY).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None
    cost = usage.prompt_tokens * 100e-6 + usage.completion_tokens * 200e-6
    assert spent(gated) - before == pytest.approx(cost, abs=1e-9)
