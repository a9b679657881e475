// braid/models/vq_image.cpp — VQ image tokenizer (conv encoder, shared codebook, conv decoder).
#include "braid/models/vq_image.h"

#include <torch/torch.h>

#include <cmath>

#include "braid/core/error.h"

namespace braid::models {

namespace tnn = torch::nn;

VQOptions VQOptions::from_config(const Config& c, const nn::EncoderContext& image) {
  VQOptions o;
  o.channels = c.get<std::vector<int64_t>>("channels", o.channels);
  o.res_blocks = c.get<int64_t>("res_blocks", o.res_blocks);
  o.rotation = c.get<bool>("rotation", o.rotation);
  auto& cb = o.codebook;
  cb.dim = c.get<int64_t>("dim", 64);
  cb.codes = c.get<int64_t>("codes", 512);
  cb.decay = c.get<double>("decay", cb.decay);
  cb.epsilon = c.get<double>("epsilon", cb.epsilon);
  cb.beta = c.get<double>("beta", cb.beta);
  cb.reset_after = c.get<int64_t>("reset_after", 50);
  cb.recent = c.get<int64_t>("recent", 20);
  cb.mm_ema = false;
  cb.reset_from = "features";
  if (image.image_size > 0) o.image_size = image.image_size;
  if (!image.image_mean.empty()) o.mean = image.image_mean;
  if (!image.image_std.empty()) o.std = image.image_std;
  const std::string& origin = c.origin();
  BRAID_INPUT_CHECK(!o.channels.empty() && o.channels.size() <= 5, "{}: recipe key '{}': expected 1 to 5 stages",
                    origin, c.full("channels"));
  for (auto ch : o.channels)
    BRAID_INPUT_CHECK(ch > 0 && ch <= 4096, "{}: recipe key '{}': channels must be in [1, 4096]", origin,
                      c.full("channels"));
  BRAID_INPUT_CHECK(o.image_size % (int64_t{1} << o.channels.size()) == 0 && o.grid() >= 1,
                    "{}: recipe key '{}': {} stride-2 stages do not divide the image size {} (data.image.size)", origin,
                    c.full("channels"), o.channels.size(), o.image_size);
  BRAID_INPUT_CHECK(o.res_blocks >= 0 && o.res_blocks <= 16, "{}: recipe key '{}': expected 0 to 16", origin,
                    c.full("res_blocks"));
  BRAID_INPUT_CHECK(cb.dim > 0 && cb.dim <= 4096, "{}: recipe key '{}': expected 1 to 4096", origin, c.full("dim"));
  BRAID_INPUT_CHECK(cb.codes > 1 && cb.codes <= 65536, "{}: recipe key '{}': expected 2 to 65536", origin,
                    c.full("codes"));
  BRAID_INPUT_CHECK(cb.decay > 0 && cb.decay < 1, "{}: recipe key '{}': expected a decay in (0, 1), got {}", origin,
                    c.full("decay"), cb.decay);
  BRAID_INPUT_CHECK(cb.beta >= 0 && std::isfinite(cb.beta), "{}: recipe key '{}': expected >= 0", origin,
                    c.full("beta"));
  BRAID_INPUT_CHECK(cb.epsilon > 0, "{}: recipe key '{}': expected > 0", origin, c.full("epsilon"));
  BRAID_INPUT_CHECK(cb.reset_after >= 0 && (cb.reset_after == 0 || (cb.recent >= 0 && cb.recent < cb.reset_after)),
                    "{}: recipe keys '{}' / '{}': expected reset_after >= 0 (0 = never) and 0 <= recent < reset_after",
                    origin, c.full("reset_after"), c.full("recent"));
  BRAID_INPUT_CHECK(o.mean.size() == 3 && o.std.size() == 3, "{}: vq_image reads RGB images (3-channel mean/std)",
                    origin);
  return o;
}

namespace {

// x + conv1x1(relu(conv3x3(relu(x))))
class ResBlockImpl : public tnn::Module {
 public:
  explicit ResBlockImpl(int64_t ch) {
    a = register_module("a", tnn::Conv2d(tnn::Conv2dOptions(ch, ch, 3).padding(1)));
    b = register_module("b", tnn::Conv2d(tnn::Conv2dOptions(ch, ch, 1)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return x + b(torch::relu(a(torch::relu(x)))); }
  tnn::Conv2d a{nullptr}, b{nullptr};
};
TORCH_MODULE(ResBlock);

}  // namespace

VQTokenizerImpl::VQTokenizerImpl(VQOptions o) : options(std::move(o)) {
  const auto& ch = options.channels;
  const int64_t D = options.codebook.dim, top = ch.back();
  tnn::Sequential enc;
  enc->push_back(tnn::Conv2d(tnn::Conv2dOptions(3, ch[0], 3).padding(1)));
  enc->push_back(tnn::ReLU());
  for (size_t i = 0; i < ch.size(); ++i) {
    enc->push_back(tnn::Conv2d(tnn::Conv2dOptions(ch[i == 0 ? 0 : i - 1], ch[i], 4).stride(2).padding(1)));
    enc->push_back(tnn::ReLU());
  }
  for (int64_t r = 0; r < options.res_blocks; ++r) enc->push_back(ResBlock(top));
  enc->push_back(tnn::ReLU());
  enc->push_back(tnn::Conv2d(tnn::Conv2dOptions(top, D, 1)));
  encoder = register_module("encoder", enc);

  tnn::Sequential dec;
  dec->push_back(tnn::Conv2d(tnn::Conv2dOptions(D, top, 3).padding(1)));
  for (int64_t r = 0; r < options.res_blocks; ++r) dec->push_back(ResBlock(top));
  dec->push_back(tnn::ReLU());
  for (size_t i = ch.size(); i-- > 0;) {
    dec->push_back(tnn::ConvTranspose2d(tnn::ConvTranspose2dOptions(ch[i], ch[i == 0 ? 0 : i - 1], 4).stride(2).padding(1)));
    dec->push_back(tnn::ReLU());
  }
  dec->push_back(tnn::Conv2d(tnn::Conv2dOptions(ch[0], 3, 3).padding(1)));
  decoder = register_module("decoder", dec);
  codebook = register_module("codebook", objectives::SharedCodebook(options.codebook));
}

torch::Tensor VQTokenizerImpl::encode(const torch::Tensor& x) { return encoder->forward(x).permute({0, 2, 3, 1}); }

torch::Tensor VQTokenizerImpl::decode(const torch::Tensor& q) {
  return decoder->forward(q.permute({0, 3, 1, 2}).contiguous());
}

torch::Tensor VQTokenizerImpl::codes(const torch::Tensor& x) {
  BRAID_INPUT_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) == options.image_size &&
                        x.size(3) == options.image_size,
                    "vq: expected images [B, 3, {0}, {0}], got {1}", options.image_size, c10::str(x.sizes()));
  return codebook->assign(encode(x)).reshape({x.size(0), -1});
}

torch::Tensor VQTokenizerImpl::decode_codes(const torch::Tensor& ids) {
  const int64_t g = options.grid(), K = options.codebook.codes;
  BRAID_INPUT_CHECK(ids.dim() == 2 && ids.size(1) == g * g, "vq: expected code ids [B, {}] ({}x{} grid), got {}",
                    g * g, g, g, c10::str(ids.sizes()));
  auto l = ids.to(torch::kLong);
  BRAID_INPUT_CHECK(l.numel() == 0 || (l.min().item<int64_t>() >= 0 && l.max().item<int64_t>() < K),
                    "vq: code ids must be in [0, {})", K);
  const auto& e = codebook->embedding();
  auto q = e.index_select(0, l.reshape(-1).to(e.device())).reshape({ids.size(0), g, g, -1});
  return decode(q);
}

torch::Tensor VQTokenizerImpl::to_pixels(const torch::Tensor& x) const {
  auto opts = torch::TensorOptions().dtype(x.scalar_type()).device(x.device());
  auto m = torch::tensor(options.mean, torch::kDouble).to(opts).view({1, 3, 1, 1});
  auto s = torch::tensor(options.std, torch::kDouble).to(opts).view({1, 3, 1, 1});
  return (x * s + m).clamp(0, 1);
}

torch::Tensor VQTokenizerImpl::pass_gradient(const torch::Tensor& s, const torch::Tensor& q) const {
  if (!options.rotation) return s + (q - s).detach();
  // rotation trick: out = λ R s with R the rotation taking s's direction to q's, λ = ‖q‖ / ‖s‖, both held
  // constant in the backward pass; the value equals q.
  const double tiny = 1e-12;
  auto sd = s.detach(), qd = q.detach();
  auto sn = sd.norm(2, -1, true).clamp_min(tiny), qn = qd.norm(2, -1, true).clamp_min(tiny);
  auto u = sd / sn, qh = qd / qn;
  auto r = u + qh;
  r = r / r.norm(2, -1, true).clamp_min(tiny);
  auto rs = s - 2 * r * (r * s).sum(-1, true) + 2 * qh * (u * s).sum(-1, true);
  auto out = (qn / sn) * rs;
  return out + (qd - out).detach();  // exact value (rounding) with the rotated gradient
}

torch::Tensor psnr(const torch::Tensor& x, const torch::Tensor& y) {
  auto mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-10);
  return 10 * torch::log10(1.0 / mse);
}

torch::Tensor ssim(const torch::Tensor& x, const torch::Tensor& y) {
  const int64_t win = std::min<int64_t>({11, x.size(2), x.size(3)});
  auto t = torch::arange(win, x.options()) - (win - 1) / 2.0;
  auto g = torch::exp(-t.pow(2) / (2 * 1.5 * 1.5));
  g = g / g.sum();
  const int64_t C = x.size(1);
  auto w = (g.unsqueeze(1) * g.unsqueeze(0)).expand({C, 1, win, win}).contiguous();
  namespace F = torch::nn::functional;
  auto blur = [&](const torch::Tensor& a) { return F::conv2d(a, w, F::Conv2dFuncOptions().groups(C)); };
  const double c1 = 0.01 * 0.01, c2 = 0.03 * 0.03;
  auto mx = blur(x), my = blur(y);
  auto sxx = blur(x * x) - mx * mx, syy = blur(y * y) - my * my, sxy = blur(x * y) - mx * my;
  auto map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2));
  return map.flatten(1).mean(1);
}

VQImageImpl::VQImageImpl(const Config& cfg, const ModelContext& ctx) {
  BRAID_INPUT_CHECK(ctx.modalities.size() == 1 && ctx.modalities[0] == "image",
                    "{}: model 'vq_image' reads images only (model.modalities: [image])", cfg.origin());
  BRAID_INPUT_CHECK(ctx.task == Task::Align, "{}: model 'vq_image' trains with 'task: align' (self-supervised)",
                    cfg.origin());
  vq = register_module("vq", VQTokenizer(VQOptions::from_config(cfg.at("vq"), ctx.encoders.at("image"))));
}

torch::Tensor VQImageImpl::forward(const Batch&) {
  input_error("model 'vq_image' has no task outputs: it turns images into codes (braid tokenize-image)");
}

ModelImpl::Capabilities VQImageImpl::capabilities() const {
  Capabilities c;
  c.codes = vq->options.codebook.codes;
  c.scores = true;
  return c;
}

namespace {
const ModalityBatch& images_of(const Batch& b) {
  auto it = b.mods.find("image");
  BRAID_INPUT_CHECK(it != b.mods.end() && it->second.data.defined(), "vq_image: the batch has no images");
  return it->second;
}
// rows that have an image
torch::Tensor present_images(const ModalityBatch& mb) {
  auto keep = mb.present.to(torch::kBool);
  return keep.all().item<bool>() ? mb.data : mb.data.index({keep.to(mb.data.device())});
}
}  // namespace

torch::Tensor VQImageImpl::objective(const Batch& batch) {
  auto x = present_images(images_of(batch));
  auto s = vq->encode(x);
  auto idx = vq->codebook->assign(s);
  const auto& e = vq->codebook->embedding();
  auto q = e.index_select(0, idx.reshape(-1)).reshape(s.sizes());
  auto recon = vq->decode(vq->pass_gradient(s, q));
  auto rec = torch::mse_loss(recon, x);
  auto commit = torch::mse_loss(s, q.detach());
  if (is_training()) vq->codebook->update({s}, {idx});
  auto st = objectives::code_stats(idx, vq->options.codebook.codes);
  terms_ = {{"recon", rec.item<double>()},
            {"commit", commit.item<double>()},
            {"perplexity", st.perplexity},
            {"live_codes", static_cast<double>(vq->codebook->live_codes())}};
  return rec + vq->options.codebook.beta * commit;
}

torch::Tensor VQImageImpl::codes(const std::string& modality, const ModalityBatch& mb) {
  BRAID_INPUT_CHECK(modality == "image", "vq_image: no codes for '{}' (it reads images)", modality);
  torch::NoGradGuard ng;
  return vq->codes(mb.data);
}

torch::Tensor VQImageImpl::decode_codes(const std::string& modality, const torch::Tensor& ids) {
  BRAID_INPUT_CHECK(modality == "image", "vq_image: no decoder for '{}' (it reads images)", modality);
  torch::NoGradGuard ng;
  return vq->to_pixels(vq->decode_codes(ids));
}

std::map<std::string, double> VQImageImpl::score_batch(const Batch& batch) {
  torch::NoGradGuard ng;
  auto x = present_images(images_of(batch));
  if (x.size(0) == 0) return {};
  auto real = vq->to_pixels(x);
  auto made = vq->to_pixels(vq->decode_codes(vq->codes(x)));
  const double p = psnr(made, real).mean().item<double>();
  return {{"mse", (made - real).pow(2).mean().item<double>()},
          {"psnr", p},
          {"ssim", ssim(made, real).mean().item<double>()},
          {"score", p}};
}

}  // namespace braid::models
