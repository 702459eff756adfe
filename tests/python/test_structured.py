"""Structured output and tools on the embedded model, through the official
`openai` package: `parse` into a Pydantic model, every `tool_choice`,
streamed tool calls the SDK reassembles (500 of them, none malformed), a
follow-up turn with tool results, and a 400 for a schema keyword the
engine cannot enforce."""

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, List, Literal

import openai
import pytest
from pydantic import BaseModel, Field, StringConstraints

from conftest import MODEL

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "unit"],
            "additionalProperties": False,
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "strict": True,
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string", "maxLength": 40}},
            "required": ["timezone"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER, TIME]
PARAMS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


def check_arguments(call):
    """The call names an offered function and its arguments meet its schema."""
    params = PARAMS[call.function.name]
    args = json.loads(call.function.arguments)
    assert set(args) == set(params["required"]), args
    for key, spec in params["properties"].items():
        if "enum" in spec:
            assert args[key] in spec["enum"], args
        else:
            assert isinstance(args[key], str) and len(args[key]) <= spec["maxLength"], args
    return args


class Person(BaseModel):
    name: str = Field(max_length=30)
    age: int = Field(ge=0, le=120)
    role: Literal["admin", "user", "guest"]
    # Bounded strings: a 135M model left free repeats itself inside one.
    hobbies: List[Annotated[str, StringConstraints(max_length=20)]] = Field(max_length=3)


def test_parse_returns_a_pydantic_object(client):
    r = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Describe a user of a web shop."}],
        response_format=Person,
        temperature=0,
        max_tokens=150,
    )
    msg = r.choices[0].message
    assert isinstance(msg.parsed, Person), msg
    assert r.choices[0].finish_reason == "stop"
    assert Person.model_validate_json(msg.content) == msg.parsed


def test_json_object_streamed(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Return a JSON object with the keys city and country for Paris."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=60,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert isinstance(json.loads(text), dict), text


def test_tool_choice_required_named_auto_and_none(client):
    ask = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    r = client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, tool_choice="required", temperature=0)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls, choice
    for call in choice.message.tool_calls:
        assert call.id.startswith("call_") and call.type == "function"
        check_arguments(call)

    named = {"type": "function", "function": {"name": "get_time"}}
    r = client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, tool_choice=named, temperature=0)
    calls = r.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["get_time"]
    check_arguments(calls[0])

    r = client.chat.completions.create(model=MODEL, messages=ask, tools=TOOLS, tool_choice="auto", temperature=0)
    msg = r.choices[0].message
    if msg.tool_calls:
        assert r.choices[0].finish_reason == "tool_calls"
        for call in msg.tool_calls:
            check_arguments(call)
    else:
        assert msg.content and "<tool_call>" not in msg.content

    r = client.chat.completions.create(
        model=MODEL, messages=ask, tools=TOOLS, tool_choice="none", temperature=0, max_tokens=30
    )
    assert r.choices[0].message.tool_calls is None and r.choices[0].message.content


def test_parallel_calls_and_one_call_when_parallel_is_off(client):
    ask = [{"role": "user", "content": "What is the weather in Paris, and what is the weather in London?"}]
    seen = 0
    for seed in range(8):
        # Streamed: the SDK reassembles the calls from their deltas by index.
        r = streamed_calls(client, ask, temperature=0.8, seed=seed)
        calls = r.choices[0].message.tool_calls
        assert calls and len({c.id for c in calls}) == len(calls)
        for call in calls:
            check_arguments(call)
        seen = max(seen, len(calls))
        r = streamed_calls(client, ask, parallel_tool_calls=False, temperature=0.8, seed=seed)
        assert len(r.choices[0].message.tool_calls) == 1
    assert seen >= 2, "no answer made more than one call"


def streamed_calls(client, messages, **kw):
    """A streamed answer that must call a tool, as the SDK reassembles it."""
    with client.chat.completions.stream(
        model=MODEL, messages=messages, tools=TOOLS, tool_choice="required", **kw
    ) as stream:
        return stream.get_final_completion()


def test_500_streamed_tool_calls_reassemble_into_valid_json(client):
    cities = ["Paris", "London", "Tokyo", "Lima", "Oslo", "Cairo", "Delhi", "Quito", "Rome", "Seoul"]

    def one(i):
        ask = [{"role": "user", "content": f"What is the weather in {cities[i % len(cities)]}? ({i})"}]
        # One call each: with parallel calls allowed this 135M model at this
        # temperature sometimes repeats calls until max_tokens.
        final = streamed_calls(client, ask, parallel_tool_calls=False, temperature=0.9, seed=i, max_tokens=400)
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls", choice
        return [check_arguments(c) for c in choice.message.tool_calls]

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(one, range(500)))
    assert len(results) == 500 and all(results)


def test_a_follow_up_turn_with_the_tool_result(client):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model=MODEL, messages=ask, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "get_weather"}}
    )
    call = first.choices[0].message.tool_calls[0]
    history = ask + [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "21 degrees celsius and sunny"},
    ]
    r = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, temperature=0, max_tokens=40)
    choice = r.choices[0]
    assert choice.message.content or choice.message.tool_calls
    assert r.usage.prompt_tokens > first.usage.prompt_tokens


def test_a_schema_keyword_that_cannot_be_enforced_is_a_400(client):
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "not": {"required": ["a"]}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
        )
    assert e.value.status_code == 400
    assert "not" in e.value.message and e.value.param == "response_format"
