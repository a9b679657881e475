// braid/models/vq_image.h — a VQ image tokenizer: a conv encoder maps an image to a grid of vectors, each
// replaced by its nearest entry of a codebook (objectives/codebook.h: the one codebook implementation,
// EMA updates and dead-code reset), and a conv decoder maps the codes back to pixels. 32x32 RGB -> 8x8
// codes with two stride-2 stages, 64x64 -> 16x16 likewise.
//
// recipe (task: align; the run's evaluation is the model's own: PSNR, SSIM, code usage):
//   model:
//     name: vq_image
//     modalities: [image]
//     vq:
//       channels: [32, 64]     # one stride-2 stage per entry (grid = image size / 2^stages)
//       res_blocks: 1          # residual blocks at the grid resolution (encoder and decoder)
//       dim: 64                # code vector width
//       codes: 512             # codebook entries
//       decay: 0.99            # EMA
//       beta: 0.25             # commitment
//       reset_after: 50        # a code with no assignment in this many steps is re-seeded ...
//       recent: 20             # ... from a random encoder output of the step, with this grace
//       rotation: false        # the rotation trick (Fifty et al. 2024) instead of the straight-through
//
// Objective: ‖decode(q) − x‖² (normalized pixels) + β‖s − sg(q)‖²; the codebook moves by EMA (no gradient).
// The tokenizer is also a part of model early_fusion (same parameter names under "vq."), so a vq_image
// run's weights load there with model.init_from.
#pragma once

#include <torch/nn/modules/container/sequential.h>

#include <map>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/models/model.h"
#include "braid/objectives/codebook.h"

namespace braid::models {

struct VQOptions {
  std::vector<int64_t> channels{32, 64};
  int64_t res_blocks = 1;
  bool rotation = false;
  objectives::CodebookOptions codebook;  // codes, dim, decay, epsilon, beta, reset_after, recent
  int64_t image_size = 32;
  std::vector<double> mean{0.5, 0.5, 0.5}, std{0.5, 0.5, 0.5};  // the run's data.image normalization

  int64_t grid() const { return image_size >> channels.size(); }
  // Reads `c` (the `vq` map) and the image facts of the run; InputError naming the key on bad values.
  static VQOptions from_config(const Config& c, const nn::EncoderContext& image);
};

class VQTokenizerImpl : public torch::nn::Module {
 public:
  explicit VQTokenizerImpl(VQOptions o);
  VQOptions options;

  // normalized images [B, 3, S, S] -> encoder outputs [B, g, g, D]
  torch::Tensor encode(const torch::Tensor& x);
  // quantized vectors [B, g, g, D] -> normalized images [B, 3, S, S]
  torch::Tensor decode(const torch::Tensor& q);
  // normalized images -> code ids [B, g·g] (row-major)
  torch::Tensor codes(const torch::Tensor& x);
  // code ids [B, g·g] -> normalized images (InputError for ids outside [0, codes) or another length)
  torch::Tensor decode_codes(const torch::Tensor& ids);
  // normalized -> [0, 1] pixels (clamped)
  torch::Tensor to_pixels(const torch::Tensor& x) const;
  // The gradient path through the quantizer: straight-through or the rotation trick; value = q.
  torch::Tensor pass_gradient(const torch::Tensor& s, const torch::Tensor& q) const;

  torch::nn::Sequential encoder{nullptr}, decoder{nullptr};
  objectives::SharedCodebook codebook{nullptr};
};
TORCH_MODULE(VQTokenizer);

// Reconstruction quality of [0, 1] images x and y [B, 3, H, W]: per-image PSNR (10 log10(1 / MSE)) and SSIM
// (11x11 Gaussian window, σ = 1.5, C1 = 0.01², C2 = 0.03², valid positions, mean over channels), each [B].
torch::Tensor psnr(const torch::Tensor& x, const torch::Tensor& y);
torch::Tensor ssim(const torch::Tensor& x, const torch::Tensor& y);

class VQImageImpl : public ModelImpl {
 public:
  VQImageImpl(const Config& cfg, const ModelContext& ctx);
  torch::Tensor forward(const Batch& batch) override;  // InputError: the tokenizer has no task outputs
  torch::Tensor objective(const Batch& batch) override;
  std::map<std::string, double> loss_terms() const override { return terms_; }
  Capabilities capabilities() const override;
  torch::Tensor codes(const std::string& modality, const ModalityBatch& mb) override;
  int64_t live_codes() const override { return vq->codebook->live_codes(); }
  torch::Tensor decode_codes(const std::string& modality, const torch::Tensor& codes) override;
  // mse, psnr, ssim of the reconstructions (pixels in [0, 1]); score = psnr
  std::map<std::string, double> score_batch(const Batch& batch) override;

  VQTokenizer vq{nullptr};

 private:
  std::map<std::string, double> terms_;
};
TORCH_MODULE(VQImage);

}  // namespace braid::models
