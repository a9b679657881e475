// braid/nn/encoders/hf_clip.h — the towers of Hugging Face `CLIPModel` / `SiglipModel` (and OpenCLIP
// ViT checkpoints, converted to the same layout), with HF parameter names so that a converted
// checkpoint loads strictly (run/hf_clip.h does the conversion; docs/weights.md).
//
// Encoders (registry names):
//   hf_clip_vision  [B, 3, S, S] -> [B, out_dim]
//     clip:   patch conv (no bias) -> class token + learned positions -> pre_layrnorm -> pre-norm blocks
//             -> post_layernorm on the class token -> `projection` (Linear, no bias) when projection_dim > 0
//     siglip: patch conv (bias) -> learned positions (no class token) -> blocks -> post_layernorm on
//             every token -> `head`: multihead attention pooling with a learned probe (MAP), + MLP
//   hf_clip_text    ids [B, L] -> [B, out_dim]
//     clip:   token + position embeddings -> causal pre-norm blocks -> final_layer_norm -> the state at the
//             EOS token (`pool`: eos = first id equal to eos_id, argmax = the highest id, as original CLIP
//             and OpenCLIP) -> `projection` (no bias) when projection_dim > 0
//     siglip: ids padded to max_positions with pad_id (as SigLIP was trained) -> bidirectional blocks ->
//             final_layer_norm -> the last position -> `head` (Linear with bias)
// Parameter names below the encoder are those of HF below `vision_model.` / `text_model.`
// (`embeddings.patch_embedding.weight`, `encoder.layers.3.self_attn.q_proj.bias`, `head.probe`, ...);
// the CLIP projection is `projection.weight` (HF `visual_projection` / `text_projection`).
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <string>

#include "braid/core/config.h"
#include "braid/nn/encoder.h"

namespace braid::nn {

struct HFClipOptions {
  std::string variant = "clip";      // clip | siglip
  int64_t hidden = 768;              // hidden_size
  int64_t intermediate = 3072;       // intermediate_size (MLP width)
  int64_t layers = 12;               // num_hidden_layers
  int64_t heads = 12;                // num_attention_heads (hidden % heads == 0)
  std::string act = "quick_gelu";    // hidden_act: quick_gelu | gelu | gelu_pytorch_tanh
  double eps = 1e-5;                 // layer_norm_eps
  int64_t projection_dim = 0;        // clip: output width of the bias-free projection (0 = none)
  // vision
  int64_t image_size = 224;          // image side the positions were learned for
  int64_t patch = 16;                // patch_size
  // text
  int64_t vocab = 49408;             // vocab_size
  int64_t max_positions = 77;        // max_position_embeddings (longer inputs are cut)
  std::string pool = "eos";          // clip text pooling: eos | argmax (siglip: always the last position)
  int64_t eos_id = 49407;            // eos_token_id (pool: eos)
  int64_t pad_id = 1;                // pad_token_id (siglip text: pads every input to max_positions)
  static HFClipOptions from_config(const Config& c);
};

// One pre-norm block: x + attn(layer_norm1(x)), x + mlp(layer_norm2(x)); HF names
// self_attn.{q,k,v,out}_proj, mlp.fc1/fc2.
class HFClipLayerImpl : public torch::nn::Module {
 public:
  explicit HFClipLayerImpl(const HFClipOptions& o);
  // x [B, T, D]; mask [T, T] or [B, 1, T, T] additive (0 / -inf) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask = {});

 private:
  HFClipOptions o_;
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  torch::nn::Linear q_{nullptr}, k_{nullptr}, v_{nullptr}, out_{nullptr}, fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(HFClipLayer);

class HFClipVisionImpl : public EncoderImpl {
 public:
  HFClipVisionImpl(HFClipOptions o, const EncoderContext& ctx);
  HFClipOptions options;
  // Pooled features before the projection: [B, hidden].
  torch::Tensor pooled(const torch::Tensor& images);

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  int64_t n_patches_ = 0;
  torch::nn::Conv2d patch_{nullptr};
  torch::Tensor cls_;
  torch::nn::Embedding pos_{nullptr};
  torch::nn::LayerNorm pre_{nullptr}, post_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  // siglip MAP head
  torch::Tensor probe_, in_w_, in_b_;
  torch::nn::Linear head_out_{nullptr}, head_fc1_{nullptr}, head_fc2_{nullptr};
  torch::nn::LayerNorm head_ln_{nullptr};
  torch::nn::Linear proj_{nullptr};
};

class HFClipTextImpl : public EncoderImpl {
 public:
  HFClipTextImpl(HFClipOptions o, const EncoderContext& ctx);
  HFClipOptions options;
  // Pooled features before the projection: [B, hidden]. `lengths` [B] (may be undefined: all of L).
  torch::Tensor pooled(const torch::Tensor& ids, const torch::Tensor& lengths = {});

 protected:
  torch::Tensor encode(const ModalityBatch& mb) override;

 private:
  torch::nn::Embedding tok_{nullptr}, pos_{nullptr};
  torch::nn::ModuleList layers_{nullptr};
  torch::nn::LayerNorm final_{nullptr};
  torch::nn::Linear head_{nullptr}, proj_{nullptr};
};

}  // namespace braid::nn
