"""The response cache as the official `openai` and `anthropic` packages see
it: a hit streamed back in each dialect (the SDK reassembles the same
answer and usage), a semantic hit on a reworded question, completions,
deletion of an entry by id, and tenants kept apart."""

import json
import urllib.request

import anthropic
import openai
import pytest

from conftest import MODEL, run_server

KEY = "sy-python-cache-key"
OTHER = "sy-python-cache-other"
ADMIN = "python-cache-admin-token"
# This SDK version has no `temperature` argument; Anthropic's default (1.0,
# no seed) is sampled, which the cache neither serves nor stores.
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    cfg = d / "config.toml"
    cfg.write_text(
        f"""
[auth]
admin_token_env = "SY_PYC_ADMIN"
[state]
path = "{d / 'state.jsonl'}"
[[keys]]
id = "main"
key_env = "SY_PYC_KEY"
[[keys]]
id = "other"
key_env = "SY_PYC_OTHER"
[cache]
"""
    )
    env = {"SY_PYC_KEY": KEY, "SY_PYC_OTHER": OTHER, "SY_PYC_ADMIN": ADMIN}
    yield from run_server("cache", ["--config", str(cfg)], env)


def oai(base, key=KEY):
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=120)


def ask(base, question, key=KEY, **kw):
    raw = oai(base, key).chat.completions.with_raw_response.create(
        model=MODEL, messages=[{"role": "user", "content": question}], temperature=0, max_tokens=12, **kw
    )
    return raw.headers, raw.parse()


def test_a_hit_streams_back_through_the_openai_sdk(gateway):
    q = "Name one primary colour."
    headers, first = ask(gateway, q)
    assert headers["x-switchyard-cache"] == "miss"
    entry = headers["x-switchyard-cache-entry"]
    raw = oai(gateway).chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": q}],
        temperature=0,
        max_tokens=12,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-switchyard-cache"] == "hit-exact"
    assert raw.headers["x-switchyard-cache-entry"] == entry
    text, usage, finish = "", None, None
    for chunk in raw.parse():
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert text == first.choices[0].message.content
    assert finish == first.choices[0].finish_reason
    assert usage.completion_tokens == first.usage.completion_tokens
    assert usage.prompt_tokens == first.usage.prompt_tokens


def test_a_reworded_question_is_a_semantic_hit(gateway):
    _, first = ask(gateway, "What is the boiling point of water at sea level?")
    headers, again = ask(gateway, "what's the boiling point of water at sea level")
    assert headers["x-switchyard-cache"] == "hit-semantic"
    assert 0.0 < float(headers["x-switchyard-cache-similarity"]) <= 1.0
    assert again.choices[0].message.content == first.choices[0].message.content
    # Same words, another thing asked: never served that answer.
    headers, _ = ask(gateway, "What is the boiling point of water on Mount Everest?", extra_headers={"cache-control": "no-store"})
    assert headers["x-switchyard-cache"] == "miss"


def test_a_hit_streams_back_through_the_anthropic_sdk(gateway):
    c = anthropic.Anthropic(base_url=gateway, api_key=KEY, max_retries=0, timeout=120)
    msg = [{"role": "user", "content": "Say hello to a new colleague."}]
    first = c.messages.with_raw_response.create(model=MODEL, max_tokens=12, messages=msg, extra_body=GREEDY)
    assert first.headers["x-switchyard-cache"] == "miss"
    whole = first.parse()
    raw = c.messages.with_raw_response.create(model=MODEL, max_tokens=12, messages=msg, stream=True, extra_body=GREEDY)
    assert raw.headers["x-switchyard-cache"] == "hit-exact"
    text, stop, out_tokens = "", None, None
    for event in raw.parse():
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text += event.delta.text
        elif event.type == "message_delta":
            stop = event.delta.stop_reason
            out_tokens = event.usage.output_tokens
    assert text == whole.content[0].text
    assert stop == whole.stop_reason
    assert out_tokens == whole.usage.output_tokens
    # The SDK's own stream helper reassembles the same message.
    with c.messages.stream(model=MODEL, max_tokens=12, messages=msg, extra_body=GREEDY) as s:
        assert s.get_final_text() == whole.content[0].text


def test_completions_are_cached_too(gateway):
    c = oai(gateway)
    first = c.completions.with_raw_response.create(model=MODEL, prompt="The sky is", max_tokens=6, temperature=0)
    assert first.headers["x-switchyard-cache"] == "miss"
    again = c.completions.with_raw_response.create(model=MODEL, prompt="The sky is", max_tokens=6, temperature=0)
    assert again.headers["x-switchyard-cache"] == "hit-exact"
    assert again.parse().choices[0].text == first.parse().choices[0].text


def test_a_deleted_entry_is_no_longer_served_and_tenants_stay_apart(gateway):
    q = "Give me a synonym for happy."
    headers, _ = ask(gateway, q)
    entry = headers["x-switchyard-cache-entry"]
    assert ask(gateway, q)[0]["x-switchyard-cache"] == "hit-exact"
    # Another key never gets this key's answers.
    assert ask(gateway, q, key=OTHER, extra_headers={"cache-control": "no-store"})[0]["x-switchyard-cache"] == "miss"
    req = urllib.request.Request(
        f"{gateway}/admin/cache/entries/{entry}", method="DELETE", headers={"Authorization": f"Bearer {ADMIN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert json.load(r)["deleted"] is True
    headers, _ = ask(gateway, q)
    assert headers["x-switchyard-cache"] == "miss"
    assert headers["x-switchyard-cache-entry"] != entry
