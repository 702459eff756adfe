"""The official `openai` package against a served Gemma 3 file (gemma3
architecture, SentencePiece vocabulary, Q4_K_M, no chat template of its own:
the family's template is used): chat, streaming with usage, a json_schema
answer that validates, a forced tool call, and the model card."""

import json

import pytest

from conftest import ROOT, run_server

GEMMA = "gemma-3-270m"


@pytest.fixture(scope="module")
def gemma():
    import openai

    args = ["--model", str(ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"), "--model-name", GEMMA,
            "--context-length", "4096", "--kv-cache-mib", "256"]
    for base in run_server("gemma", args):
        yield openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)


def ask(text):
    return [{"role": "user", "content": text}]


def test_the_card_says_what_the_file_is(gemma):
    models = gemma.models.list()
    card = next(m for m in models.data if m.id == GEMMA)
    extra = card.model_extra
    assert extra["context_length"] == 4096
    details = extra["details"]
    assert details["architecture"] == "gemma3"
    assert details["quantization"] == "Q4_K_M"
    assert details["tokenizer"] == "llama"
    assert details["trained_context_length"] == 32768
    assert 250_000_000 < details["parameters"] < 300_000_000


def test_chat_uses_the_gemma_turns_and_counts_usage(gemma):
    r = gemma.chat.completions.create(model=GEMMA, messages=ask("What is the capital of France?"),
                                      temperature=0, max_tokens=24)
    text = r.choices[0].message.content
    assert text and "<start_of_turn>" not in text and "<end_of_turn>" not in text
    assert r.choices[0].finish_reason in ("stop", "length")
    # <bos> <start_of_turn> user \n … <end_of_turn> \n <start_of_turn> model \n
    assert 14 <= r.usage.prompt_tokens <= 20
    assert 0 < r.usage.completion_tokens <= 24
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_gives_the_same_text_and_usage(gemma):
    kw = dict(model=GEMMA, messages=ask("Name three colours."), temperature=0, max_tokens=20)
    whole = gemma.chat.completions.create(**kw)
    parts, usage = [], None
    for chunk in gemma.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
    assert "".join(parts) == whole.choices[0].message.content
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_a_json_schema_answer_validates(gemma):
    schema = {
        "type": "object",
        # Bounded fields: a 270M model left to write an unbounded integer can run to max_tokens.
        "properties": {"city": {"type": "string", "maxLength": 30}, "country": {"type": "string", "maxLength": 30},
                       "is_capital": {"type": "boolean"}},
        "required": ["city", "country", "is_capital"],
        "additionalProperties": False,
    }
    r = gemma.chat.completions.create(
        model=GEMMA, messages=ask("Give the largest city of Japan, its country and whether it is the capital, as JSON."),
        temperature=0,
        max_tokens=80, response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema,
                                                                               "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    value = json.loads(r.choices[0].message.content)
    assert set(value) == {"city", "country", "is_capital"}
    assert isinstance(value["city"], str) and len(value["city"]) <= 30 and isinstance(value["is_capital"], bool)


def test_a_forced_tool_call(gemma):
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                       "required": ["city"], "additionalProperties": False}}}]
    r = gemma.chat.completions.create(
        model=GEMMA, messages=ask("What is the weather in Paris?"), tools=tools, temperature=0, max_tokens=60,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    calls = r.choices[0].message.tool_calls
    assert r.choices[0].finish_reason == "tool_calls"
    assert calls and calls[0].function.name == "get_weather"
    assert isinstance(json.loads(calls[0].function.arguments)["city"], str)
