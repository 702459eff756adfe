//! Seed corpora: realistic request bodies, as the SDKs and agents send
//! them, covering each dialect's features. Every seed is a valid request
//! (the test `every_seed_is_accepted` holds them to it), so mutations start
//! from deep inside the validator rather than at its front door.

use serde_json::{json, Value};

fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
          "required": ["city"], "additionalProperties": false},
        "strict": true}})
}

/// `POST /v1/chat/completions` bodies.
pub fn openai_chat() -> Vec<Value> {
    vec![
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}),
        json!({"model": "gpt-4o", "messages": [
                {"role": "system", "content": "You are a terse assistant."},
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": "And of Italy?"}],
               "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": ["\n\n", "User:"], "seed": 42,
               "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "user-1234"}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Weather in Paris?"}],
               "tools": [weather_tool(), {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}],
               "tool_choice": "auto", "parallel_tool_calls": false}),
        json!({"model": "gpt-4o", "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_def456", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\",\"unit\":\"celsius\"}"}}]},
                {"role": "tool", "tool_call_id": "call_abc123", "content": "{\"temp\": 18}"},
                {"role": "tool", "tool_call_id": "call_def456", "content": [{"type": "text", "text": "{\"temp\": 24}"}]}],
               "tools": [weather_tool()], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
        json!({"model": "gpt-4o", "max_tokens": 300, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in these images?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg", "detail": "high"}}]}]}),
        json!({"model": "gpt-4o-2024-08-06", "messages": [
                {"role": "system", "content": "Extract the event information."},
                {"role": "user", "content": "Alice and Bob are going to a science fair on Friday."}],
               "response_format": {"type": "json_schema", "json_schema": {"name": "calendar_event", "strict": true, "schema": {
                   "type": "object", "additionalProperties": false, "required": ["name", "date", "participants"],
                   "properties": {"name": {"type": "string"}, "date": {"type": "string"},
                                  "participants": {"type": "array", "items": {"type": "string"}}}}}}}),
        json!({"model": "gpt-4o", "messages": [
                {"role": "developer", "content": "Answer in JSON."},
                {"role": "user", "content": "List three colours."}],
               "response_format": {"type": "json_object"}, "temperature": 0}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Pick a number."}],
               "logprobs": true, "top_logprobs": 5, "max_completion_tokens": 8}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "Count to five."}],
               "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 20}),
        json!({"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "Write a haiku."}],
               "stop": "END", "n": 1, "top_k": 40, "min_tokens": 2, "max_tokens": 32, "ignore_eos": false,
               "cache_salt": "tenant-a", "prompt_cache_key": "haiku-v1", "max_cost": 0.01, "truncation": "auto"}),
        json!({"model": "gpt-4o", "messages": [
                {"role": "system", "content": [{"type": "text", "text": "You help with maths."}]},
                {"role": "user", "name": "alice", "content": "What is 2+2?"},
                {"role": "assistant", "name": "tutor", "content": "4"},
                {"role": "user", "name": "alice", "content": "Call the calculator anyway."}],
               "tools": [{"type": "function", "function": {"name": "calc", "description": "Evaluate", "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}}}}],
               "tool_choice": "required", "truncation": "disabled"}),
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content":
                "Traduis: 日本語のテキスト, مرحبا بالعالم, שלום, 👩‍💻🚀, e\u{301}, \u{200f}rtl\u{200e}, tab\tnew\nline \"quoted\" \\ back"}],
               "tools": [weather_tool()], "tool_choice": "none"}),
    ]
}

/// `POST /v1/completions` bodies.
pub fn openai_completions() -> Vec<Value> {
    vec![
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test"}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["Once upon a time", "In a galaxy far away"], "max_tokens": 16}),
        json!({"model": "davinci-002", "prompt": "The quick brown fox", "logprobs": 5, "echo": true, "max_tokens": 5}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "1, 2, 3,", "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 10}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Q: What is 2+2?\nA:", "stop": ["\n", "Q:"], "max_tokens": 8,
               "temperature": 0, "seed": 7, "user": "user-42"}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "def fib(n):", "suffix": "", "best_of": 1, "logit_bias": {"50256": -100}, "max_tokens": 64}),
        json!({"model": "llama-3.1-8b", "prompt": "Tell me a story.", "top_k": 50, "top_p": 0.95, "min_tokens": 4, "max_tokens": 12, "ignore_eos": true}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Return a JSON object with a key a.", "response_format": {"type": "json_object"}}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "import numpy as np\n\ndef softmax(x):\n    \"\"\"Stable softmax.\"\"\"\n    e = np.exp(x - x.max())\n    return", "max_tokens": 40,
               "presence_penalty": 0.3, "frequency_penalty": 0.3, "n": 1}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Continue: 春はあけぼの。やうやう白くなりゆく山ぎは、 مرحبا 👋🏽", "cache_salt": "s1", "max_cost": 0.5}),
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["a", "b", "c", "d"], "stop": "END", "max_tokens": 3, "logprobs": 0}),
    ]
}

fn anthropic_tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Get the current weather in a given location",
         "input_schema": {"type": "object", "properties": {
             "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
             "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}},
        {"name": "get_time", "description": "Current time in a time zone", "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}
    ])
}

/// `POST /v1/messages` bodies.
pub fn anthropic_messages() -> Vec<Value> {
    vec![
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "Hello, Claude"}]}),
        json!({"model": "claude-3-5-haiku-latest", "max_tokens": 256, "system": "You are a pirate.",
               "messages": [
                   {"role": "user", "content": "Hello there."},
                   {"role": "assistant", "content": "Ahoy! How can I help ye?"},
                   {"role": "user", "content": "Where be the treasure?"}],
               "temperature": 0.7, "top_p": 0.9, "top_k": 40, "stop_sequences": ["\n\nHuman:", "ARR"]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 512,
               "system": [
                   {"type": "text", "text": "You are an AI assistant tasked with analyzing literary works."},
                   {"type": "text", "text": "<the entire contents of Pride and Prejudice>", "cache_control": {"type": "ephemeral"}}],
               "messages": [{"role": "user", "content": "Analyze the major themes."}]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": anthropic_tools(), "tool_choice": {"type": "auto"},
               "messages": [{"role": "user", "content": "What's the weather like in San Francisco?"}]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": anthropic_tools(), "messages": [
                {"role": "user", "content": "What's the weather like in San Francisco and Tokyo?"},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "I'll check both."},
                    {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather", "input": {"location": "San Francisco, CA", "unit": "celsius"}},
                    {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"location": "Tokyo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": [{"type": "text", "text": "15 degrees"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "Service unavailable", "is_error": true},
                    {"type": "text", "text": "Summarise please."}]}]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 300, "tools": anthropic_tools(),
               "tool_choice": {"type": "tool", "name": "get_time", "disable_parallel_tool_use": true},
               "messages": [{"role": "user", "content": "What time is it in Berlin?"}]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 300, "tools": anthropic_tools(), "tool_choice": {"type": "any"},
               "messages": [{"role": "user", "content": [{"type": "text", "text": "Use a tool."}]}]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U"}},
                {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
                {"type": "text", "text": "Compare these images."}]}]}),
        json!({"model": "claude-3-5-haiku-latest", "max_tokens": 64, "stream": true, "metadata": {"user_id": "13803d75-b4b5-4c3e-b2a2-6f21399b021b"},
               "messages": [{"role": "user", "content": "Stream me a limerick."}]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 128, "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Noted."}]},
                {"role": "user", "content": "Now combine them."}]}),
        json!({"model": "claude-sonnet-4-5", "max_tokens": 200, "tools": [{"name": "search", "input_schema": {"type": "object"}}],
               "tool_choice": {"type": "none"}, "messages": [
                {"role": "user", "content": "Search for cats."},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_x", "name": "search", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "3 results"}]}]}),
        json!({"model": "claude-opus-4-1", "max_tokens": 2048, "thinking": {"type": "enabled", "budget_tokens": 1024},
               "service_tier": "auto", "temperature": 1, "messages": [{"role": "user", "content":
                "Translate: 日本語, مرحبا, שלום, 👩‍💻, \u{202e}evil\u{202c}, NUL\u{0}byte"}]}),
    ]
}

/// `POST /v1/embeddings` bodies.
pub fn openai_embeddings() -> Vec<Value> {
    vec![
        json!({"model": "text-embedding-3-small", "input": "The food was delicious and the waiter was friendly."}),
        json!({"model": "text-embedding-3-small", "input": ["first document", "second document", "third"]}),
        json!({"model": "text-embedding-3-large", "input": "Reduce me.", "dimensions": 256}),
        json!({"model": "text-embedding-3-small", "input": "As base64.", "encoding_format": "base64"}),
        json!({"model": "text-embedding-3-small", "input": "As floats.", "encoding_format": "float", "user": "user-7"}),
        json!({"model": "text-embedding-ada-002", "input": [1212, 318, 257, 1332, 13]}),
        json!({"model": "text-embedding-ada-002", "input": [[1212, 318], [257, 1332, 13]]}),
        json!({"model": "all-minilm-l6-v2", "input": ["日本語のテキスト", "مرحبا بالعالم", "👩‍💻🚀"]}),
        json!({"model": "all-minilm-l6-v2", "input": "def softmax(x):\n    return np.exp(x) / np.exp(x).sum()"}),
        json!({"model": "all-minilm-l6-v2", "input": ["a", "b", "c", "d", "e", "f", "g", "h"], "encoding_format": "float"}),
    ]
}
