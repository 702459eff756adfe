#!/usr/bin/env python3
"""Writes tests/data/embeddings_reference.json: all-MiniLM-L6-v2 sentence
embeddings computed by the original model in PyTorch via sentence-transformers,
for the Rust tests to compare the server's /v1/embeddings vectors with
(cosine >= 0.999).

Run it through scripts/embedding-reference.sh, which builds the throwaway venv
(outside the repository) with sentence-transformers and torch and documents how
torch is installed: every Linux torch wheel in the package registry is a CUDA
build whose `import torch` needs the nvidia-* libraries, even though the model
runs on the CPU here.

    scripts/embedding-reference.sh           # write the JSON, then check it
    scripts/embedding-reference.sh --check   # only check the existing JSON

Output:
    {"model": "all-MiniLM-L6-v2",
     "source": "sentence-transformers X.Y.Z, torch A.B.C, ...",
     "items": [{"text": ..., "embedding": [384 floats], "tokens": N}, ...]}

`embedding` is normalized (normalize_embeddings=True), each float rounded to
7 significant digits. `tokens` is the length of the model tokenizer's
input_ids for the text, [CLS] and [SEP] included. Every text is shorter than
the model's max_seq_length (256), so none is truncated and `tokens` is the
whole text.
"""

import argparse
import json
import math
import os
import sys

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384

LONG_1 = (
    "The history of rail transport began in the sixth century BC in ancient Greece, "
    "where grooved limestone tracks let men and animals haul boats across the isthmus. "
    "Wooden wagonways appeared in German mines during the sixteenth century, and by the "
    "late eighteenth century iron rails carried coal from pits to canals across northern "
    "England. The steam locomotive changed everything: within a few decades railways "
    "connected cities, moved armies, standardized time zones and opened continents to "
    "settlement. Marshalling yards, where freight cars are sorted onto departure tracks "
    "by switches and humps, became the beating heart of these networks, deciding which "
    "wagon travels where and when it leaves."
)

LONG_2 = (
    "An API gateway sits between clients and a fleet of model servers. It authenticates "
    "every request, applies per-key rate limits, picks an upstream according to routing "
    "rules, retries on overload with backoff, and streams tokens back as server-sent "
    "events without buffering the whole answer. Good gateways add almost no latency: "
    "they reuse connections, avoid copying request bodies, and keep their own work off "
    "the hot path. They also record usage for billing, expose metrics for dashboards, "
    "and fail over to a secondary provider when the primary one is down. Embeddings "
    "requests are simpler than chat completions, since a single forward pass through an "
    "encoder produces one fixed-size vector per input, but they arrive in large batches "
    "and must be answered quickly and consistently, because downstream search indexes "
    "compare these vectors with ones computed months earlier."
)

TEXTS = [
    # short
    "Hello world",
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
    "How do I reset my password if I no longer have access to my email?",
    # single word / single character
    "Switchyard",
    "embeddings",
    "?",
    # long (100+ words)
    LONG_1,
    LONG_2,
    # punctuation
    "Wait... what?! Really -- no way; (seriously) [yes] {ok} \"quoted\" 'single' #hash @at 50% & more.",
    "I can't believe it's not butter\u2014they're right, aren't they?",
    "state-of-the-art, well-known, user-friendly, end-to-end",
    # numbers
    "The invoice total was $1,234.56 on 2024-03-15 at 14:30, order #98765.",
    "3.14159 \u00d7 2 = 6.28318, and 10^6 is one million (1,000,000).",
    # accented / non-ASCII
    "Le caf\u00e9 est tr\u00e8s \u00e9l\u00e9gant, o\u00f9 est la cr\u00e8me br\u00fbl\u00e9e ?",
    "Die Stra\u00dfe f\u00fchrt \u00fcber die Br\u00fccke, sch\u00f6ne Gr\u00fc\u00dfe aus M\u00fcnchen.",
    "cafe\u0301 na\u0131\u0308ve",  # decomposed accents (NFD): e + U+0301, dotless i + U+0308
    "\u00bfD\u00f3nde est\u00e1 la biblioteca? \u00a1Gracias, se\u00f1or!",
    "\u6211\u559c\u6b22\u5728\u5468\u672b\u8bfb\u4e66\u548c\u559d\u8336\u3002",  # Chinese
    "\u6771\u4eac\u306f\u65e5\u672c\u306e\u9996\u90fd\u3067\u3059\u3002",  # Japanese
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430?",  # Russian
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",  # Arabic
    "\u039a\u03b1\u03bb\u03b7\u03bc\u03ad\u03c1\u03b1 \u03ba\u03cc\u03c3\u03bc\u03b5",  # Greek
    "I love pizza \U0001f355 and coffee \u2615! \U0001f389\U0001f389",  # emoji
    "\uff21\uff22\uff23\uff11\uff12\uff13 full-width letters",
    # mixed case
    "ThE QuIcK BrOwN FoX JuMpS oVeR tHe LaZy DoG",
    "THIS IS AN URGENT MESSAGE FOR ALL STAFF",
    # whitespace
    "   padded on both sides   ",
    "\tTabbed start and\nnewline in the middle\n",
    # code, URLs
    'fn main() { println!("Hello, world!"); }',
    "Contact support@example.com or visit https://example.com/docs?page=2#top",
    "test test test test test",
]


def round_sig(x: float, digits: int = 7) -> float:
    return float(f"{x:.{digits}g}")


def dump(doc: dict) -> str:
    # One item per line keeps the file diffable without a line per float.
    lines = [
        "{",
        f'  "model": {json.dumps(doc["model"])},',
        f'  "source": {json.dumps(doc["source"])},',
        '  "items": [',
    ]
    items = [
        "    " + json.dumps(item, ensure_ascii=False, separators=(", ", ": "))
        for item in doc["items"]
    ]
    lines.append(",\n".join(items))
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def generate(model_dir: str, out: str) -> None:
    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    import tokenizers

    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    model.eval()
    max_len = model.max_seq_length
    print(f"model: {model_dir}, max_seq_length {max_len}", file=sys.stderr)

    # One text per forward pass, as a single-input request is computed (no padding).
    emb = model.encode(
        TEXTS, batch_size=1, normalize_embeddings=True, convert_to_numpy=True
    )
    # The same texts batched (padded): must agree, or the attention mask is ignored.
    batched = model.encode(
        TEXTS, batch_size=16, normalize_embeddings=True, convert_to_numpy=True
    )
    cos_batch = (emb * batched).sum(axis=1)
    print(f"single vs batched: min cosine {cos_batch.min():.8f}", file=sys.stderr)
    assert cos_batch.min() > 0.99999, cos_batch

    items = []
    for text, vec in zip(TEXTS, emb):
        ids = model.tokenizer(text)["input_ids"]
        assert len(ids) <= max_len, f"{len(ids)} tokens > {max_len}: {text[:40]!r}"
        items.append(
            {
                "text": text,
                "embedding": [round_sig(float(x)) for x in vec],
                "tokens": len(ids),
            }
        )

    source = (
        f"sentence-transformers {sentence_transformers.__version__}, "
        f"torch {torch.__version__.split('+')[0]}, "
        f"transformers {transformers.__version__}, "
        f"tokenizers {tokenizers.__version__}"
    )
    doc = {"model": MODEL_NAME, "source": source, "items": items}
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(dump(doc))
    print(f"wrote {out}: {len(items)} items, {os.path.getsize(out)} bytes; {source}", file=sys.stderr)

    # Semantic sanity: the paraphrase pair is closer than the unrelated sentence.
    by_text = dict(zip(TEXTS, emb))
    a = by_text["A man is playing a guitar."]
    b = by_text["Someone is strumming a guitar."]
    c = by_text["The stock market fell sharply today."]
    sim_ab, sim_ac = float(np.dot(a, b)), float(np.dot(a, c))
    print(f"cos(guitar, guitar') {sim_ab:.4f}, cos(guitar, stocks) {sim_ac:.4f}", file=sys.stderr)
    assert sim_ab > 0.6 and sim_ac < 0.3, (sim_ab, sim_ac)


def check(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert set(doc) == {"model", "source", "items"}, sorted(doc)
    assert doc["model"] == MODEL_NAME, doc["model"]
    assert doc["source"].startswith("sentence-transformers "), doc["source"]
    items = doc["items"]
    assert len(items) >= 24, len(items)
    texts = [it["text"] for it in items]
    assert len(set(texts)) == len(texts), "duplicate texts"
    worst = 0.0
    for it in items:
        assert set(it) == {"text", "embedding", "tokens"}, sorted(it)
        assert isinstance(it["text"], str) and it["text"], it
        assert isinstance(it["tokens"], int) and it["tokens"] >= 3, it["tokens"]
        e = it["embedding"]
        assert len(e) == DIM and all(isinstance(x, float) for x in e), it["text"]
        norm = math.sqrt(sum(x * x for x in e))
        worst = max(worst, abs(norm - 1.0))
    assert worst < 1e-5, worst
    print(
        f"check {path}: {len(items)} items x {DIM} floats, tokens "
        f"{min(i['tokens'] for i in items)}..{max(i['tokens'] for i in items)}, "
        f"max |norm - 1| {worst:.2e}; {doc['source']}",
        file=sys.stderr,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2")
    ap.add_argument("--out", default="tests/data/embeddings_reference.json")
    ap.add_argument("--check", action="store_true", help="only check --out")
    args = ap.parse_args()
    if not args.check:
        generate(args.model, args.out)
    check(args.out)


if __name__ == "__main__":
    main()
