"""Writes small random-weight GGUF files, one per architecture that has no
real file on the package registries (qwen2, qwen3, gemma2, phi3), with the
tensor names, shapes and metadata llama.cpp expects and a real vocabulary
copied from a real file (SmolLM2's byte-level BPE for qwen2, qwen3 and phi3
as Phi-4 has one; Gemma 3's SentencePiece for gemma2).

Deterministic: the same seed and package versions give the same bytes, so
the llama.cpp answers recorded on them once (tests/data/reference/*.json,
with each file's SHA-256) stay valid; the tests check the SHA-256.

  python gen-family-ggufs.py MODELS_DIR
"""
import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType, GGUFWriter, quants

SEED = 20261207


def vocabulary(path):
    """The tokenizer keys of a real file, to copy."""
    r = GGUFReader(path)
    out = {}
    for key, field in r.fields.items():
        if key.startswith("tokenizer.") and key != "tokenizer.chat_template":
            if field.types[0] == GGUFValueType.ARRAY:
                out[key] = (field.types[1], field.contents())
            else:
                out[key] = (field.types[0], field.contents())
    return out


def add_vocabulary(w, vocab, pre=None):
    for key, (ty, value) in vocab.items():
        if key == "tokenizer.ggml.pre" and pre:
            value = pre
        if isinstance(value, list):
            w.add_array(key, value)
        elif ty == GGUFValueType.STRING:
            w.add_string(key, value)
        elif ty == GGUFValueType.BOOL:
            w.add_bool(key, value)
        elif ty == GGUFValueType.UINT32:
            w.add_uint32(key, value)
        elif ty == GGUFValueType.INT32:
            w.add_int32(key, value)
        elif ty == GGUFValueType.FLOAT32:
            w.add_float32(key, value)


class Tensors:
    def __init__(self, w, seed):
        self.w = w
        self.rng = np.random.default_rng(seed)

    def matrix(self, name, rows, cols, qtype, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(cols)
        data = (self.rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        self.put(name, data, qtype)

    def vector(self, name, n, mean=1.0, spread=0.1):
        data = (mean + self.rng.standard_normal(n) * spread).astype(np.float32)
        self.put(name, data, Q.F32)

    def put(self, name, data, qtype):
        if qtype == Q.F32:
            self.w.add_tensor(name, data)
        elif qtype == Q.F16:
            self.w.add_tensor(name, data.astype(np.float16))
        else:
            self.w.add_tensor(name, quants.quantize(data, qtype), raw_dtype=qtype)


def write(path, arch, shape, vocab, pre, extra, layer, seed, types, tied=True):
    d, n_ff, n_layer, n_head, n_kv, hd = (shape[k] for k in ("d", "ff", "layers", "heads", "kv", "hd"))
    n_vocab = len(vocab["tokenizer.ggml.tokens"][1])
    w = GGUFWriter(str(path), arch)
    # Not the family's name: llama.cpp keys some tokenizer quirks on general.name (Phi-3).
    w.add_name("random weights")
    w.add_context_length(4096)
    w.add_embedding_length(d)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_file_type(types["file_type"])
    for key, value in extra.items():
        if isinstance(value, float):
            w.add_float32(f"{arch}.{key}", value)
        else:
            w.add_uint32(f"{arch}.{key}", value)
    add_vocabulary(w, vocab, pre)
    t = Tensors(w, seed)
    # Embeddings with a larger scale than the projections, so logits spread.
    t.matrix("token_embd.weight", n_vocab, d, types["embed"], scale=1.0)
    t.vector("output_norm.weight", d)
    if not tied:
        t.matrix("output.weight", n_vocab, d, types["embed"], scale=1.0)
    for i in range(n_layer):
        layer(t, f"blk.{i}", d, n_ff, n_head, n_kv, hd, types)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def qwen2_layer(t, b, d, n_ff, n_head, n_kv, hd, ty):
    t.vector(f"{b}.attn_norm.weight", d)
    for name, rows in (("attn_q", n_head * hd), ("attn_k", n_kv * hd), ("attn_v", n_kv * hd)):
        t.matrix(f"{b}.{name}.weight", rows, d, ty["proj"])
        t.vector(f"{b}.{name}.bias", rows, mean=0.0, spread=0.5)
    mlp(t, b, d, n_ff, n_head * hd, ty)


def qkv(t, b, d, n_head, n_kv, hd, ty):
    t.vector(f"{b}.attn_norm.weight", d)
    t.matrix(f"{b}.attn_q.weight", n_head * hd, d, ty["proj"])
    t.matrix(f"{b}.attn_k.weight", n_kv * hd, d, ty["proj"])
    t.matrix(f"{b}.attn_v.weight", n_kv * hd, d, ty["proj"])


def qwen3_layer(t, b, d, n_ff, n_head, n_kv, hd, ty):
    qkv(t, b, d, n_head, n_kv, hd, ty)
    t.vector(f"{b}.attn_q_norm.weight", hd)
    t.vector(f"{b}.attn_k_norm.weight", hd)
    mlp(t, b, d, n_ff, n_head * hd, ty)


def gemma2_layer(t, b, d, n_ff, n_head, n_kv, hd, ty):
    qkv(t, b, d, n_head, n_kv, hd, ty)
    t.vector(f"{b}.post_attention_norm.weight", d)
    mlp(t, b, d, n_ff, n_head * hd, ty)
    t.vector(f"{b}.post_ffw_norm.weight", d)


def phi3_layer(t, b, d, n_ff, n_head, n_kv, hd, ty):
    t.vector(f"{b}.attn_norm.weight", d)
    t.matrix(f"{b}.attn_qkv.weight", (n_head + 2 * n_kv) * hd, d, ty["proj"])
    t.matrix(f"{b}.attn_output.weight", d, n_head * hd, ty["proj"])
    t.vector(f"{b}.ffn_norm.weight", d)
    t.matrix(f"{b}.ffn_up.weight", 2 * n_ff, d, ty["ffn"])
    t.matrix(f"{b}.ffn_down.weight", d, n_ff, ty["ffn"])


def mlp(t, b, d, n_ff, q_width, ty):
    t.matrix(f"{b}.attn_output.weight", d, q_width, ty["proj"])
    t.vector(f"{b}.ffn_norm.weight", d)
    t.matrix(f"{b}.ffn_gate.weight", n_ff, d, ty["ffn"])
    t.matrix(f"{b}.ffn_up.weight", n_ff, d, ty["ffn"])
    t.matrix(f"{b}.ffn_down.weight", d, n_ff, ty["ffn"])


def main():
    models = Path(sys.argv[1])
    bpe = vocabulary(models / "SmolLM2-135M-Instruct.Q4_1.gguf")
    spm = vocabulary(models / "gemma-3-270m-q4_k_m.gguf")
    small = {"d": 256, "ff": 512, "layers": 4, "heads": 4, "kv": 2, "hd": 64}
    narrow = {"d": 128, "ff": 384, "layers": 4, "heads": 4, "kv": 1, "hd": 32}
    # llama_ftype: 7 Q8_0, 2 Q4_0, 9 Q5_1, 8 Q5_0 (the bulk type of each file).
    files = [
        ("random-qwen2.gguf", "qwen2", small, bpe, "qwen2", {}, qwen2_layer,
         {"file_type": 7, "embed": Q.Q8_0, "proj": Q.Q8_0, "ffn": Q.Q8_0}, False),
        ("random-qwen3.gguf", "qwen3", {**small, "hd": 128}, bpe, "qwen2", {}, qwen3_layer,
         {"file_type": 2, "embed": Q.F16, "proj": Q.Q4_0, "ffn": Q.Q4_1}, True),
        ("random-gemma2.gguf", "gemma2", narrow, spm, None,
         {"attention.sliding_window": 64, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0},
         gemma2_layer, {"file_type": 9, "embed": Q.Q8_0, "proj": Q.Q5_1, "ffn": Q.Q5_1}, True),
        # Phi-4's kind of vocabulary (byte-level BPE): llama.cpp looks up
        # Phi-3's own special tokens in a SentencePiece one, which Gemma's lacks.
        ("random-phi3.gguf", "phi3", {**narrow, "kv": 4}, bpe, None, {}, phi3_layer,
         {"file_type": 8, "embed": Q.Q8_0, "proj": Q.Q5_0, "ffn": Q.BF16}, False),
    ]
    for i, (name, arch, shape, vocab, pre, extra, layer, types, tied) in enumerate(files):
        out = models / name
        tmp = out.with_suffix(".tmp")
        write(tmp, arch, shape, vocab, pre, extra, layer, SEED + i, types, tied)
        tmp.replace(out)
        print(out)


if __name__ == "__main__":
    main()
