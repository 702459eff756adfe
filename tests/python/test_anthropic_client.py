"""The official `anthropic` package against Switchyard's `/v1/messages`:
the embedded model, and a remote model through an OpenAI-kind backend and
an Anthropic-kind backend (both the project's mock provider), whole and
streamed, with system prompts, stop sequences, count_tokens, a wrong key
and a rate limit."""

import anthropic
import pytest

from conftest import MODEL, run_mock_provider, run_server
from test_structured import WEATHER

KEY = "sy-anthropic-test-key"
LIMITED = "sy-anthropic-test-limited"


@pytest.fixture(scope="module")
def mock_provider():
    yield from run_mock_provider("--tokens", "6")


@pytest.fixture(scope="module")
def gateway(mock_provider, tmp_path_factory):
    d = tmp_path_factory.mktemp("anthropic")
    cfg = d / "config.toml"
    cfg.write_text(
        f"""
[state]
path = "{d / 'state.jsonl'}"
[[keys]]
id = "main"
key_env = "SY_AN_KEY"
[[keys]]
id = "limited"
key_env = "SY_AN_LIMITED"
rpm = 1
[[models]]
name = "{MODEL}"
path = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
[[backends]]
name = "mock-openai"
kind = "openai"
base_url = "http://127.0.0.1:{mock_provider}/v1"
[[backends.models]]
name = "via-openai"
upstream = "mock-small"
[[backends]]
name = "mock-anthropic"
kind = "anthropic"
base_url = "http://127.0.0.1:{mock_provider}/v1"
[[backends.models]]
name = "via-anthropic"
upstream = "mock-large"
"""
    )
    env = {"SY_AN_KEY": KEY, "SY_AN_LIMITED": LIMITED}
    yield from run_server("anthropic", ["--config", str(cfg)], env)


def client(base, key=KEY):
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=120)


def test_whole_message_from_the_embedded_model(gateway):
    msg = client(gateway).messages.create(
        model=MODEL,
        max_tokens=8,
        system="You answer in one word.",
        messages=[{"role": "user", "content": "What is the capital city of France?"}],
        metadata={"user_id": "python-test"},
        extra_body={"temperature": 0},
    )
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.model == MODEL
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.stop_reason in ("end_turn", "max_tokens")
    assert msg.usage.input_tokens > 10 and 1 <= msg.usage.output_tokens <= 8


def test_streamed_message_with_a_stop_sequence(gateway):
    with client(gateway).messages.stream(
        model=MODEL,
        max_tokens=48,
        messages=[{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
        stop_sequences=["7"],
        extra_body={"temperature": 0},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "7" not in text, text
    assert final.content[0].text == text
    assert final.usage.output_tokens >= 1
    # Greedy, the model counts past 6: the stop sequence ended the answer, and is named.
    assert "6" in text, text
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "7")


def test_count_tokens_matches_the_usage(gateway):
    c = client(gateway)
    messages = [{"role": "user", "content": "Say hello."}]
    counted = c.messages.count_tokens(model=MODEL, system="Be brief.", messages=messages)
    msg = c.messages.create(model=MODEL, max_tokens=2, system="Be brief.", messages=messages)
    assert counted.input_tokens == msg.usage.input_tokens


@pytest.mark.parametrize("model", ["via-openai", "via-anthropic"])
def test_remote_models_whole_and_streamed(gateway, model):
    c = client(gateway)
    msg = c.messages.create(
        model=model,
        max_tokens=16,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello there"}],
    )
    assert msg.content[0].text.strip()
    assert msg.usage.output_tokens > 0
    with c.messages.stream(model=model, max_tokens=16, messages=[{"role": "user", "content": "Hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.strip() and final.content[0].text == text
    # The mock always ends with its length limit: `length` / `max_tokens` upstream.
    assert final.stop_reason == "max_tokens"


def test_sampling_fields_the_sdk_no_longer_types_go_in_extra_body(gateway):
    msg = client(gateway).messages.create(
        model=MODEL,
        max_tokens=4,
        messages=[{"role": "user", "content": "Hi"}],
        extra_body={"top_k": 5, "top_p": 0.9},
    )
    assert msg.usage.output_tokens >= 1


def test_wrong_key_is_an_authentication_error(gateway):
    with pytest.raises(anthropic.AuthenticationError) as e:
        client(gateway, "sy-wrong").messages.create(
            model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}]
        )
    assert e.value.status_code == 401
    assert e.value.body["type"] == "error"
    assert e.value.body["error"]["type"] == "authentication_error"


def test_bad_request_is_an_anthropic_error(gateway):
    with pytest.raises(anthropic.BadRequestError) as e:
        client(gateway).messages.create(
            model=MODEL, max_tokens=2, messages=[{"role": "user", "content": "Hi"}], extra_body={"temperature": 1.5}
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert "temperature" in e.value.body["error"]["message"]


def test_rate_limit_is_a_rate_limit_error_with_retry_after(gateway):
    c = client(gateway, LIMITED)
    c.messages.create(model="via-openai", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model="via-openai", max_tokens=2, messages=[{"role": "user", "content": "Hi"}])
    assert e.value.status_code == 429
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.body["error"]["type"] == "rate_limit_error"


# The same function the OpenAI-side tests offer, in the Messages API's shape.
WEATHER_TOOL = {
    "name": WEATHER["function"]["name"],
    "description": WEATHER["function"]["description"],
    "input_schema": WEATHER["function"]["parameters"],
}


def check_weather_input(block):
    assert block.type == "tool_use" and block.name == "get_weather" and block.id
    assert set(block.input) == {"city", "unit"} and block.input["unit"] in ("celsius", "fahrenheit"), block.input
    assert isinstance(block.input["city"], str) and len(block.input["city"]) <= 40


@pytest.mark.parametrize("choice", [{"type": "any"}, {"type": "tool", "name": "get_weather"}])
def test_tool_use_on_the_embedded_model_whole_and_streamed(gateway, choice):
    c = client(gateway)
    ask = dict(
        model=MODEL,
        max_tokens=200,
        extra_body={"temperature": 0},
        tools=[WEATHER_TOOL],
        tool_choice=choice,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
    )
    whole = c.messages.create(**ask)
    assert whole.stop_reason == "tool_use", whole
    uses = [b for b in whole.content if b.type == "tool_use"]
    assert len(uses) >= 1
    for b in uses:
        check_weather_input(b)
    # Streamed: the SDK builds each input from its input_json_delta pieces.
    with c.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert streamed.stop_reason == "tool_use"
    assert [(b.name, b.input) for b in streamed.content if b.type == "tool_use"] == [(b.name, b.input) for b in uses]
    # The result goes back as a tool_result block; the model answers on.
    follow = c.messages.create(
        model=MODEL,
        max_tokens=40,
        extra_body={"temperature": 0},
        tools=[WEATHER_TOOL],
        messages=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": [b.model_dump() for b in whole.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": uses[0].id, "content": "21 C, sunny"}]},
        ],
    )
    assert follow.content and follow.usage.input_tokens > whole.usage.input_tokens


def test_structured_output_through_a_forced_tool(gateway):
    """The Messages API's way to structured output: force one tool and read its input."""
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"type": "string", "maxLength": 30}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    r = client(gateway).messages.create(
        model=MODEL,
        max_tokens=100,
        extra_body={"temperature": 0},
        tools=[{"name": "record", "description": "Record the answer", "input_schema": schema}],
        tool_choice={"type": "tool", "name": "record"},
        messages=[{"role": "user", "content": "Which city is the capital of France, and in which country is it?"}],
    )
    (block,) = [b for b in r.content if b.type == "tool_use"]
    assert set(block.input) == {"city", "country"}, block.input
