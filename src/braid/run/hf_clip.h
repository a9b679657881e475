// braid/run/hf_clip.h — CLIP / SigLIP checkpoints as braid dual-tower runs (`braid import hf` for
// config.json model_type clip / siglip, `braid import openclip`).
//
// The imported run is an ordinary align run: model dual_tower with the towers of nn/encoders/hf_clip.h
// (hf_clip_vision, hf_clip_text), `projection: {identity: true}` (the CLIP projections live inside the
// towers), `loss: clip` (logit_scale) or `siglip` (logit_scale and bias = logit_bias), and the image
// preprocessing of the checkpoint's preprocessor_config.json in `data.image` (resize shortest/square,
// bicubic, centre crop, mean/std). Its embeddings equal `CLIPModel.get_image_features` /
// `get_text_features` (SigLIP: `SiglipModel.get_*_features`; OpenCLIP: `encode_image` / `encode_text`),
// L2-normalised as braid embeds.
//
// Errors are InputErrors naming the file and the key or tensor: an unsupported hidden_act, a config
// key that changes the architecture (vision_use_head false, OpenCLIP attentional pooling, layer
// scale, ...), a missing / unexpected / mis-shaped tensor (in the checkpoint's own names).
#pragma once

#include <string>

#include "braid/core/safetensors.h"  // TensorMap
#include "braid/models/model.h"
#include "braid/run/hf_checkpoint.h"

namespace braid::run {

// A converted checkpoint: the run's recipe and the model's tensors under braid's names.
struct ClipImport {
  std::string kind;          // clip | siglip | openclip
  std::string recipe_yaml;   // the full recipe of the run (task align, data.image, data.text, model)
  TensorMap tensors;         // dual_tower names: enc_image.*, enc_text.*, logit_scale (, bias)
  std::string source;        // what was read (errors, run facts)
};

// A Hugging Face CLIPModel / SiglipModel checkpoint (config.json model_type clip or siglip); the image
// preprocessing from `preprocessor_config.json` beside it (defaults of the model type when absent).
ClipImport convert_hf_clip(const HfCheckpoint& ck);

// An OpenCLIP state dict saved as safetensors (visual.conv1.weight, ..., text_projection, logit_scale)
// and its model config (open_clip's model_configs/<name>.json: embed_dim, vision_cfg, text_cfg,
// quick_gelu). Preprocessing: OpenCLIP's (shortest side to image_size, bicubic, centre crop, the
// OpenAI mean/std).
ClipImport convert_openclip(const std::string& weights, const std::string& model_config);

// The HF names the OpenCLIP tensors have in a CLIPModel (in_proj split into q/k/v, proj transposed);
// checks the OpenCLIP name table of `model_config` first. Exposed for tests.
TensorMap openclip_to_hf(const TensorMap& openclip, const nlohmann::json& model_config, const std::string& source);

// The dual tower of `im.recipe_yaml` on the CPU with `im.tensors` loaded (no run directory, no
// tokenizer: the text tower's vocabulary is the checkpoint's). For tests and benchmarks.
models::ModelPtr clip_model(const ClipImport& im);

// Write a braid run directory `out_dir` (run/run_dir.h names): the recipe, the tokenizer copied from
// `tokenizer` (a tokenizer.json, or a sentencepiece .model), the final model with `im.tensors` loaded
// strictly, and the run facts (with what was imported and its SHA-256), which it returns. Refuses an
// existing run directory.
nlohmann::json write_clip_run(const ClipImport& im, const std::string& tokenizer, const std::string& out_dir);

// `braid import hf DIR` for model_type clip / siglip: convert_hf_clip + write_clip_run with the folder's
// tokenizer (find_hf_tokenizer).
nlohmann::json import_hf_clip(const HfCheckpoint& ck, const std::string& out_dir);

// `braid import openclip FILE --model-config JSON [--tokenizer T] --out RUN`.
nlohmann::json import_openclip(const std::string& weights, const std::string& model_config,
                               const std::string& tokenizer, const std::string& out_dir);

// The tokenizer file of a HF folder for the run (tokenizer.json, else spiece.model / tokenizer.model),
// "" when it has none.
std::string find_hf_tokenizer(const std::string& dir);

}  // namespace braid::run
