"""The official `openai` package streams through one Switchyard to a remote
OpenAI-compatible server (the project's mock provider) and to the embedded
engine, in the same run."""

import openai
import pytest

from conftest import MODEL, run_mock_provider, run_server


@pytest.fixture(scope="module")
def mock_provider():
    yield from run_mock_provider("--tokens", "6")


@pytest.fixture(scope="module")
def gateway(mock_provider, tmp_path_factory):
    cfg = tmp_path_factory.mktemp("remote") / "config.toml"
    cfg.write_text(
        f"""
[[backends]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{mock_provider}/v1"
[[backends.models]]
name = "remote-small"
upstream = "mock-small"
capabilities = ["chat", "completions", "streaming", "json_mode", "logprobs", "tools", "vision"]
"""
    )
    for base in run_server("remote", ["--config", str(cfg)]):
        yield openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)


def stream_text(client, model):
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is the capital city of France? Answer in one word."}],
        temperature=0,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
    return text, usage


def test_streams_from_remote_and_embedded_models(gateway):
    ids = {m.id for m in gateway.models.list().data}
    assert {"remote-small", MODEL} <= ids
    remote, usage = stream_text(gateway, "remote-small")
    assert remote == "mock word1 word2 word3 word4 word5"
    assert usage.completion_tokens == 6
    local, usage = stream_text(gateway, MODEL)
    assert "Paris" in local
    assert usage.completion_tokens >= 1


def test_auto_routes_by_need_and_relays_the_upstream_stream(gateway):
    # "auto" is the cheapest model that can serve: the embedded one (no price)...
    plain = gateway.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
    )
    assert plain.headers["x-switchyard-model"] == MODEL
    # ...unless the request needs what it lacks (reading images): then the remote model.
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    stream = gateway.chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is this?"}, image]}],
        max_tokens=3,
        stream=True,
    )
    chunks = list(stream)
    # The upstream's chunks, as it sent them (its model id and fingerprint).
    assert chunks and all(c.model == "mock-small" for c in chunks)
    assert all(c.system_fingerprint == "fp_mock" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "mock word1 word2"
