// Records llama.cpp's answers for the engine's reference tests, through
// libllama's public API only. Input: one text per line, hex-encoded UTF-8
// (so any byte, newline or control character survives). Output: JSON.
//
//   switchyard-reference tokenize MODEL < texts.hex   > ids.json
//   switchyard-reference logits   MODEL TOPK < texts.hex > logits.json
//   switchyard-reference greedy   MODEL N    < texts.hex > greedy.json
//
// Every text is tokenized as the server does a prompt (BOS when the file
// asks for it, special tokens parsed). `logits` decodes each text whole and
// keeps, for every position, the TOPK largest logits (id and value);
// with REFERENCE_EXACT set, K/V stay f32 and attention is not fused (for a
// file dequantized to F32, so every product is f32);
// `greedy` continues each text N tokens by argmax, one sequence at a time.
#include "llama.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

static std::string unhex(const std::string & h) {
    std::string out;
    for (size_t i = 0; i + 1 < h.size(); i += 2) {
        out.push_back((char) std::stoi(h.substr(i, 2), nullptr, 16));
    }
    return out;
}

static std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text) {
    std::vector<llama_token> ids(text.size() + 16);
    int n = llama_tokenize(vocab, text.data(), (int) text.size(), ids.data(), (int) ids.size(), true, true);
    if (n < 0) {
        ids.resize(-n);
        n = llama_tokenize(vocab, text.data(), (int) text.size(), ids.data(), (int) ids.size(), true, true);
    }
    ids.resize(std::max(n, 0));
    return ids;
}

static void print_ids(const std::vector<llama_token> & ids) {
    std::printf("[");
    for (size_t i = 0; i < ids.size(); i++) std::printf("%s%d", i ? "," : "", ids[i]);
    std::printf("]");
}

int main(int argc, char ** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s tokenize|logits|greedy MODEL [N]\n", argv[0]);
        return 2;
    }
    const std::string mode = argv[1];
    const int n_arg = argc > 3 ? std::atoi(argv[3]) : 0;
    llama_backend_init();
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[2], mp);
    if (!model) {
        std::fprintf(stderr, "cannot load %s\n", argv[2]);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    std::vector<std::string> texts;
    for (std::string line; std::getline(std::cin, line);) texts.push_back(unhex(line));

    llama_context * ctx = nullptr;
    if (mode != "tokenize") {
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 4096;
        cp.n_batch = 4096;
        cp.n_ubatch = 512;
        cp.n_seq_max = 1;
        cp.n_threads = 2;
        cp.n_threads_batch = 2;
        // The exact reference: K/V kept in f32 and plain attention (the
        // defaults round them to f16), for a model dequantized to F32.
        if (std::getenv("REFERENCE_EXACT")) {
            cp.type_k = GGML_TYPE_F32;
            cp.type_v = GGML_TYPE_F32;
            cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        }
        ctx = llama_init_from_model(model, cp);
        if (!ctx) {
            std::fprintf(stderr, "cannot create a context\n");
            return 1;
        }
    }

    std::printf("[\n");
    for (size_t t = 0; t < texts.size(); t++) {
        std::vector<llama_token> ids = tokenize(vocab, texts[t]);
        std::printf("%s{\"ids\":", t ? ",\n" : "");
        print_ids(ids);
        if (mode == "logits" || mode == "greedy") {
            llama_memory_clear(llama_get_memory(ctx), true);
            llama_batch batch = llama_batch_init((int) ids.size(), 0, 1);
            for (size_t i = 0; i < ids.size(); i++) {
                batch.token[i] = ids[i];
                batch.pos[i] = (llama_pos) i;
                batch.n_seq_id[i] = 1;
                batch.seq_id[i][0] = 0;
                batch.logits[i] = mode == "logits" || i + 1 == ids.size();
            }
            batch.n_tokens = (int) ids.size();
            if (llama_decode(ctx, batch) != 0) {
                std::fprintf(stderr, "decode failed on text %zu\n", t);
                return 1;
            }
            llama_batch_free(batch);
            if (mode == "logits") {
                const int k = std::max(1, n_arg);
                std::printf(",\"top\":[");
                for (size_t i = 0; i < ids.size(); i++) {
                    const float * lg = llama_get_logits_ith(ctx, (int) i);
                    std::vector<int> order(n_vocab);
                    for (int v = 0; v < n_vocab; v++) order[v] = v;
                    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                                      [&](int a, int b) { return lg[a] > lg[b] || (lg[a] == lg[b] && a < b); });
                    std::printf("%s[", i ? "," : "");
                    for (int j = 0; j < k; j++) std::printf("%s[%d,%.6g]", j ? "," : "", order[j], lg[order[j]]);
                    std::printf("]");
                }
                std::printf("]");
            } else {
                std::vector<llama_token> out;
                llama_pos pos = (llama_pos) ids.size();
                for (int n = 0; n < n_arg; n++) {
                    const float * lg = llama_get_logits_ith(ctx, -1);
                    int best = 0;
                    for (int v = 1; v < n_vocab; v++) if (lg[v] > lg[best]) best = v;
                    out.push_back(best);
                    if (llama_vocab_is_eog(vocab, best)) break;
                    llama_batch one = llama_batch_init(1, 0, 1);
                    one.token[0] = best;
                    one.pos[0] = pos++;
                    one.n_seq_id[0] = 1;
                    one.seq_id[0][0] = 0;
                    one.logits[0] = true;
                    one.n_tokens = 1;
                    if (llama_decode(ctx, one) != 0) {
                        std::fprintf(stderr, "decode failed while generating\n");
                        return 1;
                    }
                    llama_batch_free(one);
                }
                std::printf(",\"greedy\":");
                print_ids(out);
            }
        }
        std::printf("}");
    }
    std::printf("\n]\n");
    if (ctx) llama_free(ctx);
    llama_model_free(model);
    return 0;
}
