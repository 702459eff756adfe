"""Guardrails as the official `openai` and `anthropic` packages see them:
a streamed answer holding an e-mail address, a card number and an API key,
chunked three bytes at a time by the mock provider, reassembled redacted by
each SDK; an input block is the SDK's own BadRequestError."""

import anthropic
import openai
import pytest

from conftest import MODEL, run_mock_provider, run_server

PLANTED = "Reach me at jane.doe@example.com, card 4111-1111-1111-1111, key sk-proj-0123456789abcdefghijKLMN now."
REDACTED = "Reach me at [EMAIL_1], card [CREDIT_CARD_1], key [SECRET_1] now."


def mock_backends(port, extra_models=""):
    """Both of the mock provider's shapes as backends (`echo`, `echo-an`,
    with `extra_models` on the OpenAI-shaped one) and a redacting output
    guardrail, for a gateway without an embedded model."""
    return f"""models = []
[embeddings]
enabled = false
[[backends]]
name = "mock"
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
[[backends.models]]
name = "echo"
upstream = "mock-small"
{extra_models}[[backends]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{port}/v1"
[[backends.models]]
name = "echo-an"
upstream = "mock-large"
[[guardrails]]
name = "pii-out"
type = "pii"
stage = "output"
mode = "redact"
"""


MODERATION_MODEL = """[[backends.models]]
name = "mod"
upstream = "omni-moderation-latest"
capabilities = ["moderation"]
"""


@pytest.fixture(scope="module")
def mock():
    yield from run_mock_provider("--echo", "--chunk-bytes", "3")


@pytest.fixture(scope="module")
def gateway(mock, tmp_path_factory):
    d = tmp_path_factory.mktemp("guardrails")
    cfg = d / "config.toml"
    cfg.write_text(
        f"""
{mock_backends(mock, MODERATION_MODEL)}[[guardrails]]
name = "no-cards-in"
type = "pii"
stage = "input"
mode = "log"
entity_modes = {{ credit_card = "block" }}
models = ["echo-an"]
"""
    )
    yield from run_server("guardrails", ["--config", str(cfg)])


def test_openai_stream_is_redacted(gateway):
    c = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0, timeout=60)
    stream = c.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": PLANTED}], max_tokens=200, stream=True
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    assert text == REDACTED
    whole = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": PLANTED}], max_tokens=200)
    assert whole.choices[0].message.content == REDACTED


def test_anthropic_stream_is_redacted_and_an_input_block_is_a_bad_request(gateway):
    c = anthropic.Anthropic(base_url=gateway, api_key="unused", max_retries=0, timeout=60)
    # The input guardrail of echo-an blocks cards: ask without one first.
    planted = PLANTED.replace("card 4111-1111-1111-1111, ", "")
    with c.messages.stream(model="echo-an", max_tokens=200, messages=[{"role": "user", "content": planted}]) as s:
        text = s.get_final_text()
    assert text == REDACTED.replace("card [CREDIT_CARD_1], ", "")
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.create(model="echo-an", max_tokens=50, messages=[{"role": "user", "content": PLANTED}])
    assert "no-cards-in" in str(e.value)
    assert "4111" not in str(e.value)
    assert e.value.response.headers["x-switchyard-guardrail"] == "no-cards-in=block"


def test_moderations_through_the_openai_sdk(gateway):
    c = openai.OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0, timeout=60)
    r = c.moderations.create(model="mod", input=["I will attack you", "Have a nice day"])
    assert r.model == "mod"
    assert r.results[0].flagged and r.results[0].categories.violence
    assert r.results[0].category_scores.violence > 0.5
    assert not r.results[1].flagged


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    d = tmp_path_factory.mktemp("guardrails-local")
    cfg = d / "config.toml"
    cfg.write_text('[[guardrails]]\nname = "pii-out"\ntype = "pii"\nstage = "output"\nmode = "redact"\n')
    yield from run_server("guardrails-local", ["--config", str(cfg)])


def test_the_embedded_models_stream_is_redacted(local):
    # Greedy decoding continues the directory with the next address: the
    # client receives a placeholder, never the address.
    c = openai.OpenAI(base_url=local + "/v1", api_key="unused", max_retries=0, timeout=120)
    prompt = "Staff directory\nAlice Brown, alice.brown@example.com\nBob Green, bob.green@example.com\nCarol White,"
    stream = c.completions.create(model=MODEL, prompt=prompt, max_tokens=40, temperature=0, stream=True)
    text = "".join(ch.choices[0].text for ch in stream if ch.choices)
    assert "[EMAIL_1]" in text
    assert "@" not in text


@pytest.fixture(scope="module")
def sweep_gateway(tmp_path_factory):
    # The mock cuts request N at byte N of the answer: consecutive requests
    # try every boundary (the gateway does not pass x-mock headers on).
    for port in run_mock_provider("--echo", "--chunk-sweep"):
        d = tmp_path_factory.mktemp("guardrails-sweep")
        cfg = d / "config.toml"
        cfg.write_text(mock_backends(port))
        yield from run_server("guardrails-sweep", ["--config", str(cfg)])


def test_every_chunk_boundary_through_both_sdks(sweep_gateway):
    o = openai.OpenAI(base_url=sweep_gateway + "/v1", api_key="unused", max_retries=0, timeout=60)
    a = anthropic.Anthropic(base_url=sweep_gateway, api_key="unused", max_retries=0, timeout=60)
    n = len(PLANTED.encode()) + 1
    for _ in range(n):
        stream = o.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": PLANTED}], max_tokens=200, stream=True
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices) == REDACTED
    for _ in range(n):
        with a.messages.stream(model="echo-an", max_tokens=200, messages=[{"role": "user", "content": PLANTED}]) as s:
            assert s.get_final_text() == REDACTED
