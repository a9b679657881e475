#include "braid/models/model.h"

#include <torch/torch.h>

#include "braid/core/error.h"
#include "braid/models/ave_localizer.h"
#include "braid/models/dual_tower.h"
#include "braid/models/early_fusion.h"
#include "braid/models/fusion_classifier.h"
#include "braid/models/language_model.h"
#include "braid/models/mctn.h"
#include "braid/models/mfn.h"
#include "braid/models/mllm.h"
#include "braid/models/mult.h"
#include "braid/models/single_tower.h"
#include "braid/models/unicode.h"
#include "braid/models/vq_image.h"

namespace braid::models {

const ModelRegistry& model_registry() {
  static const ModelRegistry r = [] {
    ModelRegistry r("model");
    r.add("fusion_classifier", "per-modality encoders + fusion + MLP head (unimodal with one modality)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr {
            return std::make_shared<FusionClassifierImpl>(c, ctx);
          });
    r.add("mult", "Multimodal Transformer: cross-modal attention between unaligned sequences (Tsai 2019)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<MulTImpl>(c, ctx); });
    r.add("mfn", "Memory Fusion Network: per-modality LSTMs + delta-memory attention + gated memory (Zadeh 2018)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<MFNImpl>(c, ctx); });
    r.add("mctn", "cyclic translation source -> target -> source; the source's encoding classifies (Pham 2019)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<MCTNImpl>(c, ctx); });
    r.add("dual_tower", "one encoder + projection per modality into a shared space (CLIP, SigLIP, DCCA, DeViSE, cycle)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<DualTowerImpl>(c, ctx); });
    r.add("single_tower", "ViLT-like: one Transformer over text, image and audio tokens; ITM + MLM + ITC",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<SingleTowerImpl>(c, ctx); });
    r.add("unicode", "Uni-Code: shared discrete codebook across modalities, MM-EMA, CLUB, Cross-CPC (Xia 2023; task align)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<UnicodeImpl>(c, ctx); });
    r.add("mllm", "LLaVA-style: encoder -> projector -> k tokens before the prompt -> Llama-family LM (task generate)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<MLLMImpl>(c, ctx); });
    r.add("lm", "a Llama-family causal LM on its own (task generate; braid import hf of Llama/SmolLM2/Qwen2)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<LanguageModelImpl>(c, ctx); });
    r.add("vq_image", "VQ image tokenizer: conv encoder -> codebook (EMA, dead-code reset) -> conv decoder (task align)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<VQImageImpl>(c, ctx); });
    r.add("early_fusion", "one LM over text tokens and VQ image codes: draws from text and names images, "
                          "classifier-free guidance (task generate)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<EarlyFusionImpl>(c, ctx); });
    r.add("ave_localizer", "audio-visual event localization: per-segment image and audio encoders, fused per "
                           "segment, a bidirectional GRU over the segments, a per-segment classifier (task regress, "
                           "loss segment_ce; braid data build ave)",
          [](const Config& c, const ModelContext& ctx) -> ModelPtr { return std::make_shared<AveLocalizerImpl>(c, ctx); });
    return r;
  }();
  return r;
}

torch::Tensor ModelImpl::objective(const Batch&) {
  input_error("recipe key 'task': this model has no self-supervised objective; use task classify or regress "
              "(task align needs an embedding model such as dual_tower)");
}

torch::Tensor ModelImpl::match_logits(const ModalityBatch&, const ModalityBatch&) {
  input_error("this model has no image-text matching head (ITM re-ranking needs one, e.g. single_tower)");
}

torch::Tensor ModelImpl::codes(const std::string&, const ModalityBatch&) {
  input_error("this model has no discrete codebook (code statistics need one, e.g. unicode)");
}

torch::Tensor ModelImpl::decode_codes(const std::string&, const torch::Tensor&) {
  input_error("this model has no code decoder (decoding codes to images needs an image tokenizer, e.g. vq_image)");
}

std::map<std::string, double> ModelImpl::score_batch(const Batch&) {
  input_error("this model does not score itself (evaluation by its own metrics needs e.g. vq_image)");
}

torch::Tensor ModelImpl::draw(const DrawRequest&) {
  input_error("this model does not draw (text -> image needs a 'task: generate' run of model early_fusion)");
}

nn::lm::Generated ModelImpl::generate(const Batch&, const GenerateRequest&) {
  input_error("this model does not write text (generation needs a 'task: generate' run, e.g. model mllm)");
}

torch::Tensor ModelImpl::prompt_logits(const Batch&, const GenerateRequest&) {
  input_error("this model does not write text (generation needs a 'task: generate' run, e.g. model mllm)");
}

int64_t count_parameters(const torch::nn::Module& m, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : m.parameters())
    if (!trainable_only || p.requires_grad()) n += p.numel();
  return n;
}

}  // namespace braid::models
