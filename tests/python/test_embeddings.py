"""`/v1/embeddings` through the official `openai` package: the in-process
all-MiniLM-L6-v2 against reference vectors computed by the original model
in PyTorch (sentence-transformers, tests/data/embeddings_reference.json,
made by scripts/embedding-reference.sh), as floats and as base64."""

import base64
import json
import math
import struct

import openai
import pytest

from conftest import ROOT

EMBEDDER = "all-minilm-l6-v2"
REFERENCE = json.loads((ROOT / "tests" / "data" / "embeddings_reference.json").read_text())["items"]


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_the_model_is_listed(client):
    assert EMBEDDER in [m.id for m in client.models.list().data]


def test_float_vectors_match_pytorch_and_usage_is_exact(client):
    assert len(REFERENCE) >= 20
    texts = [item["text"] for item in REFERENCE]
    r = client.embeddings.create(model=EMBEDDER, input=texts, encoding_format="float")
    assert [d.index for d in r.data] == list(range(len(texts)))
    worst = min(cosine(d.embedding, item["embedding"]) for d, item in zip(r.data, REFERENCE))
    assert worst >= 0.999, worst
    assert all(len(d.embedding) == 384 for d in r.data)
    assert r.usage.prompt_tokens == sum(item["tokens"] for item in REFERENCE)
    assert r.usage.total_tokens == r.usage.prompt_tokens
    assert r.model == EMBEDDER


def test_base64_vectors_decode_to_the_same(client):
    texts = [item["text"] for item in REFERENCE[:5]]
    raw = client.embeddings.create(model=EMBEDDER, input=texts, encoding_format="base64")
    floats = client.embeddings.create(model=EMBEDDER, input=texts, encoding_format="float")
    for b64, f in zip(raw.data, floats.data):
        decoded = struct.unpack(f"<{384}f", base64.b64decode(b64.embedding))
        assert max(abs(x - y) for x, y in zip(decoded, f.embedding)) < 1e-6
    # Without encoding_format the SDK asks for base64 and decodes it itself.
    default = client.embeddings.create(model=EMBEDDER, input=texts[0])
    assert cosine(default.data[0].embedding, REFERENCE[0]["embedding"]) >= 0.999


def test_one_string_and_token_ids(client):
    one = client.embeddings.create(model=EMBEDDER, input="Hello world", encoding_format="float")
    assert one.usage.prompt_tokens == 4
    # "hello" and "world" in MiniLM's WordPiece vocabulary.
    ids = client.embeddings.create(model=EMBEDDER, input=[7592, 2088], encoding_format="float")
    assert cosine(ids.data[0].embedding, one.data[0].embedding) > 0.9999


def test_bad_requests_are_400s_naming_the_field(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=EMBEDDER, input="x", dimensions=128)
    assert e.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=EMBEDDER, input="word " * 400)
    assert e.value.body["param"] == "input" and "input[0]" in e.value.body["message"]
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-embedder", input="x")
