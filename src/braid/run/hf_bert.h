// braid/run/hf_bert.h — a Hugging Face BERT / sentence-transformers checkpoint as a braid run
// (`braid import hf DIR --out RUN`, docs/weights.md).
//
// What is read from DIR (run/hf_checkpoint.h opens it):
//   config.json                 model_type "bert"; vocab_size, hidden_size, num_hidden_layers,
//                               num_attention_heads, intermediate_size, max_position_embeddings,
//                               type_vocab_size, layer_norm_eps, hidden_act (gelu | gelu_new |
//                               gelu_pytorch_tanh | relu), position_embedding_type (absolute only)
//   model.safetensors (+ shards) BertModel names; a "bert." prefix (BertFor* checkpoints) is dropped;
//                               pooler.* (unused by sentence-transformers) is left out; anything else
//                               that is not a BertModel weight is refused (expect_tensors)
//   modules.json                sentence-transformers modules: Transformer, Pooling, Normalize; any
//                               other module (Dense, ...) is refused naming it. Absent: mean pooling,
//                               no Normalize.
//   <Pooling path>/config.json  exactly one of pooling_mode_{mean_tokens, cls_token, max_tokens}
//   sentence_bert_config.json   max_seq_length (the text cut; default min(512, max positions))
//   tokenizer.json / vocab.txt  copied into the run (tokenizer_config.json beside vocab.txt too)
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "braid/nn/encoders/hf_bert.h"
#include "braid/run/hf_checkpoint.h"

namespace braid::run {

// The encoder options of a checkpoint (config.json + the sentence-transformers files), checked.
nn::HFBertOptions hf_bert_options(const HfCheckpoint& ck);
// HF names and shapes of a BertModel with options `o` (no pooler).
ShapeTable hf_bert_shapes(const nn::HFBertOptions& o);
// The checkpoint's BERT tensors under HF BertModel names, checked against hf_bert_shapes.
TensorMap hf_bert_tensors(const HfCheckpoint& ck, const nn::HFBertOptions& o);
// The longest text the checkpoint was used with (sentence_bert_config.json max_seq_length).
int64_t hf_bert_max_tokens(const HfCheckpoint& ck, const nn::HFBertOptions& o);

// Write run directory `out_dir`: recipe.resolved.yaml (task align, model dual_tower with one text
// tower `bert` + an identity projection, embed_only), run.json (with "imported": source,
// model_type, architectures, config_sha256, weight files, pooling, normalize), the checkpoint's
// tokenizer, and model.pt. `braid embed RUN --text ...` then gives the sentence-transformers
// embedding (always L2-normalized), and `model.init_from: RUN` loads the tower (enc_text.*).
// Returns the facts written.
nlohmann::json import_hf_bert(const HfCheckpoint& ck, const std::string& out_dir);

}  // namespace braid::run
