// braid/eval/drawing.cpp — CAS, retrieval and KID of a text -> image run against two baselines.
#include "braid/eval/drawing.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/precision.h"
#include "braid/core/runtime.h"
#include "braid/eval/metrics.h"
#include "braid/run/chat.h"
#include "braid/run/query.h"

namespace braid::eval {

namespace {

constexpr int64_t kModelBatch = 256;  // rows per classifier / tower call

// One row of the evaluated split (or of the train split, for nearest_name).
struct Row {
  int64_t index = 0;  // in the manifest
  std::string id, text, image, group, label;
  bool has_label = false;
};

// Rows of `split` with both a text (in `view`; "random" reads the first view) and an image.
std::vector<Row> rows_of(const data::Manifest& m, const std::string& split, std::string view, int64_t* skipped) {
  if (view == "random") view.clear();
  std::vector<Row> out;
  int64_t skip = 0;
  for (int64_t i : m.split_indices(split)) {
    const auto& s = m.samples()[i];
    const std::string* t = s.text_view(view);
    if (!t || s.image.empty()) {
      ++skip;
      continue;
    }
    Row r;
    r.index = i;
    r.id = s.id;
    r.text = *t;
    r.image = s.image;
    r.group = s.group;
    if (s.label) r.label = *s.label, r.has_label = true;
    out.push_back(std::move(r));
  }
  if (skipped) *skipped = skip;
  return out;
}

// Real images [N, 3, S, S] in [0, 1], decoded and fitted with `opt` (the drawing run's geometry).
torch::Tensor load_images01(const std::vector<const Row*>& rows, const data::ImageOptions& opt) {
  std::vector<torch::Tensor> v;
  v.reserve(rows.size());
  for (const Row* r : rows) v.push_back(data::fit_image(data::decode_image_file(r->image, opt.background), opt));
  return torch::stack(v);
}

std::vector<const Row*> pointers(const std::vector<Row>& rows) {
  std::vector<const Row*> p;
  for (const auto& r : rows) p.push_back(&r);
  return p;
}

// Row-wise model calls in chunks of kModelBatch, eval mode, no grad, the run's precision; outputs on the CPU.
torch::Tensor in_chunks(Pipeline& p, int64_t n, const std::function<torch::Tensor(int64_t, int64_t)>& fn) {
  torch::NoGradGuard ng;
  p.model->eval();
  std::vector<torch::Tensor> out;
  for (int64_t a = 0; a < n; a += kModelBatch) {
    check_interrupt();
    AutocastScope ac(p.device.type(), p.precision);
    out.push_back(fn(a, std::min(n, a + kModelBatch)).to(torch::kCPU).to(torch::kFloat));
  }
  return torch::cat(out);
}

torch::Tensor classify(Pipeline& clf, const torch::Tensor& images01) {
  const auto& opt = clf.pre->options().image;
  return in_chunks(clf, images01.size(0), [&](int64_t a, int64_t b) {
    Batch batch;
    for (int64_t i = a; i < b; ++i) batch.index.push_back(i);
    batch.mods["image"] = image_input(images01.slice(0, a, b), opt).to(clf.device);
    return clf.model->forward(batch);
  });
}

torch::Tensor embed_images(Pipeline& clip, const torch::Tensor& images01) {
  const auto& opt = clip.pre->options().image;
  return in_chunks(clip, images01.size(0), [&](int64_t a, int64_t b) {
    return clip.model->embed("image", image_input(images01.slice(0, a, b), opt).to(clip.device));
  });
}

torch::Tensor embed_texts(Pipeline& clip, const std::vector<std::string>& texts) {
  return in_chunks(clip, static_cast<int64_t>(texts.size()), [&](int64_t a, int64_t b) {
    std::vector<std::string> part(texts.begin() + a, texts.begin() + b);
    return clip.model->embed("text", run::text_batch(*clip.pre, part).to(clip.device));
  });
}

// decode_codes(codes(image)) of the drawing run: its tokenizer's reconstruction, [N, 3, H, W] in [0, 1].
torch::Tensor vq_roundtrip(Pipeline& drawer, const torch::Tensor& images01) {
  const auto& opt = drawer.pre->options().image;
  return in_chunks(drawer, images01.size(0), [&](int64_t a, int64_t b) {
    auto codes = drawer.model->codes("image", image_input(images01.slice(0, a, b), opt).to(drawer.device));
    return drawer.model->decode_codes("image", codes);
  });
}

// Files in --out are named by row id: anything but [A-Za-z0-9._-] becomes '_'.
std::string file_stem(const std::string& id) {
  std::string s = id;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  if (s.empty() || s[0] == '.') s = "_" + s;
  return s;
}

void write_png_file(const std::string& path, const torch::Tensor& chw01) {
  atomic_write_text(path, data::encode_png(chw01));
}

// A grid of images [n, 3, H, W], cells scaled up to at least 64 pixels (nearest neighbour) for the docs.
torch::Tensor doc_grid(const torch::Tensor& images01, int64_t cols) {
  auto x = images01.clamp(0, 1);
  const int64_t scale = std::max<int64_t>(1, 64 / std::max<int64_t>(1, x.size(2)));
  if (scale > 1) x = x.repeat_interleave(scale, 2).repeat_interleave(scale, 3);
  return data::image_grid(x, cols, 2 * scale);
}

}  // namespace

double polynomial_mmd2(const torch::Tensor& x, const torch::Tensor& y) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2 && x.size(1) == y.size(1) && x.size(1) > 0,
              "polynomial_mmd2: expected x [n, d] and y [m, d], got ", x.sizes(), " and ", y.sizes());
  TORCH_CHECK(x.size(0) >= 2 && y.size(0) >= 2, "polynomial_mmd2: needs at least 2 rows on each side, got ",
              x.size(0), " and ", y.size(0));
  auto a = x.to(torch::kCPU, torch::kDouble), b = y.to(torch::kCPU, torch::kDouble);
  const double d = static_cast<double>(a.size(1));
  const double n = static_cast<double>(a.size(0)), m = static_cast<double>(b.size(0));
  auto k = [&](const torch::Tensor& u, const torch::Tensor& v) { return (u.mm(v.t()) / d + 1.0).pow(3); };
  auto kxx = k(a, a), kyy = k(b, b), kxy = k(a, b);
  const double xx = (kxx.sum().item<double>() - kxx.diagonal().sum().item<double>()) / (n * (n - 1));
  const double yy = (kyy.sum().item<double>() - kyy.diagonal().sum().item<double>()) / (m * (m - 1));
  return xx + yy - 2.0 * kxy.mean().item<double>();
}

KidResult kernel_inception_distance(const torch::Tensor& x, const torch::Tensor& y, int64_t subsets,
                                    int64_t subset_size, uint64_t seed) {
  TORCH_CHECK(subsets >= 1 && subset_size >= 2, "kernel_inception_distance: subsets ", subsets, ", subset size ",
              subset_size, "; expected >= 1 and >= 2");
  KidResult r;
  r.subsets = subsets;
  r.x_size = std::min(subset_size, x.size(0));
  r.y_size = std::min(subset_size, y.size(0));
  auto gen = at::detail::createCPUGenerator(seed);
  auto pick = [&](const torch::Tensor& t, int64_t size) {
    if (size == t.size(0)) return t;
    return t.index_select(0, torch::randperm(t.size(0), gen, torch::kLong).slice(0, 0, size).to(t.device()));
  };
  std::vector<double> v;
  for (int64_t s = 0; s < subsets; ++s) {
    auto xs = pick(x, r.x_size);  // x's rows first, then y's, from the one generator
    auto ys = pick(y, r.y_size);
    v.push_back(polynomial_mmd2(xs, ys));
  }
  double sum = 0, sq = 0;
  for (double e : v) sum += e;
  r.mean = sum / subsets;
  for (double e : v) sq += (e - r.mean) * (e - r.mean);
  r.std = std::sqrt(sq / subsets);
  return r;
}

LabelAccuracy label_accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0),
              "label_accuracy: expected logits [N, K] and labels [N], got ", logits.sizes(), " and ", labels.sizes());
  auto y = labels.to(logits.device(), torch::kLong);
  auto keep = y >= 0;
  LabelAccuracy a;
  a.n = keep.sum().item<int64_t>();
  if (a.n == 0) return a;
  auto hit = logits.argmax(1).eq(y).logical_and(keep);
  a.accuracy = hit.sum().item<double>() / static_cast<double>(a.n);
  return a;
}

ModalityBatch image_input(const torch::Tensor& images01, const data::ImageOptions& opt) {
  TORCH_CHECK(images01.dim() == 4 && images01.size(1) == 3, "image_input: expected images [N, 3, H, W], got ",
              images01.sizes());
  TORCH_CHECK(opt.mean.size() == 3 && opt.std.size() == 3, "image_input: image mean/std need 3 channels");
  auto x = images01.to(torch::kFloat);
  if (x.size(2) != opt.size || x.size(3) != opt.size) {
    namespace F = torch::nn::functional;
    x = F::interpolate(x, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{opt.size, opt.size})
                              .mode(torch::kBilinear)
                              .align_corners(false)
                              .antialias(true));
  }
  auto mean = torch::tensor(std::vector<float>(opt.mean.begin(), opt.mean.end()), x.options()).view({1, 3, 1, 1});
  auto std = torch::tensor(std::vector<float>(opt.std.begin(), opt.std.end()), x.options()).view({1, 3, 1, 1});
  ModalityBatch mb;
  mb.data = ((x - mean) / std).contiguous();
  mb.lengths = torch::ones({x.size(0)}, torch::kLong);
  mb.present = torch::ones({x.size(0)}, torch::kBool);
  return mb;
}

nlohmann::json evaluate_drawing(Pipeline& drawer, Pipeline& classifier, Pipeline& clip,
                                const std::shared_ptr<const data::Manifest>& manifest, const DrawEvalOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto dcaps = drawer.model->capabilities();
  BRAID_INPUT_CHECK(dcaps.draws && drawer.tokenizer,
                    "task draw: the evaluated run does not draw images (a text -> image run, model early_fusion)");
  BRAID_INPUT_CHECK(classifier.task == Task::Classify && classifier.classes &&
                        classifier.modalities == std::vector<std::string>{"image"},
                    "--classifier: expected a run trained with task: classify on images only (model.modalities: "
                    "[image]), got task {} over [{}]",
                    classifier.recipe.get<std::string>("task", "?"), fmt::join(classifier.modalities, ", "));
  const auto ccaps = clip.model->capabilities();
  auto embeds = [&](const char* m) { return std::find(ccaps.embeds.begin(), ccaps.embeds.end(), m) != ccaps.embeds.end(); };
  BRAID_INPUT_CHECK(clip.task == Task::Align && embeds("image") && embeds("text"),
                    "--clip: expected a run trained with task: align that embeds image and text (e.g. "
                    "recipes/emoji_clip.yaml)");
  BRAID_INPUT_CHECK(o.per_prompt >= 1 && o.per_prompt <= 64, "--per-prompt must be in [1, 64], got {}", o.per_prompt);
  BRAID_INPUT_CHECK(std::isfinite(o.guidance) && o.guidance >= 0 && o.guidance <= 100,
                    "--guidance must be in [0, 100], got {}", o.guidance);
  BRAID_INPUT_CHECK(o.prompts_per_call >= 1, "draw: prompts per call must be >= 1, got {}", o.prompts_per_call);
  BRAID_INPUT_CHECK(o.kid_subsets >= 1 && o.kid_subset_size >= 2, "draw: KID needs >= 1 subset of >= 2 rows");

  const auto& dpre = drawer.pre->options();
  const std::string view = dpre.text.view;
  int64_t skipped = 0, train_skipped = 0;
  const auto rows = rows_of(*manifest, o.split, view, &skipped);
  BRAID_INPUT_CHECK(rows.size() >= 2, "{}: split '{}' has {} rows with both a text{} and an image; draw needs >= 2",
                    manifest->path(), o.split, rows.size(), view.empty() || view == "random" ? "" : " (view " + view + ")");
  const std::string train_split =
      o.train_split.empty() ? drawer.recipe.at("data").get<std::string>("train_split", "train") : o.train_split;
  const auto train_rows = rows_of(*manifest, train_split, view, &train_skipped);
  BRAID_INPUT_CHECK(!train_rows.empty(), "{}: split '{}' has no row with both a text and an image (nearest_name)",
                    manifest->path(), train_split);
  const int64_t N = static_cast<int64_t>(rows.size()), K = o.per_prompt;

  // labels by the classifier's class map (-1: unlabelled, or a label it never saw), groups as ids (a row
  // without a group is its own)
  std::vector<int64_t> label_v, group_v;
  std::map<std::string, int64_t> group_ids;
  for (const auto& r : rows) {
    int64_t y = -1;
    if (r.has_label) {
      const auto& names = classifier.classes->names();
      auto it = std::find(names.begin(), names.end(), r.label);
      if (it != names.end()) y = it - names.begin();
    }
    label_v.push_back(y);
    const std::string g = r.group.empty() ? "\x01row:" + r.id : r.group;
    auto it = group_ids.emplace(g, static_cast<int64_t>(group_ids.size())).first;
    group_v.push_back(it->second);
  }
  auto labels = torch::tensor(label_v, torch::kLong), groups = torch::tensor(group_v, torch::kLong);

  // the real images at the drawing run's geometry: the gallery, the classifier's reference, KID's other side
  spdlog::info("draw: {} rows of split '{}' ({} without text or image skipped), {} images each, guidance {}", N,
               o.split, skipped, K, o.guidance);
  const auto real = load_images01(pointers(rows), dpre.image);

  // draw: many prompts per call, ids as run::Generator::draw makes them
  std::vector<std::vector<int64_t>> ids;
  for (const auto& r : rows) {
    ids.push_back(run::prompt_ids(*drawer.tokenizer, run::text_prefix(r.text, dpre.text.max_tokens)));
    BRAID_INPUT_CHECK(!ids.back().empty(), "{}: row '{}' has an empty text; nothing to draw", manifest->path(), r.id);
  }
  torch::Tensor gen;
  const auto td = std::chrono::steady_clock::now();
  {
    torch::NoGradGuard ng;
    drawer.model->eval();
    std::vector<torch::Tensor> parts;
    Progress bar("draw " + o.split, N, "prompts");
    for (int64_t a = 0, call = 0; a < N; a += o.prompts_per_call, ++call) {
      check_interrupt();
      const int64_t b = std::min(N, a + o.prompts_per_call);
      models::ModelImpl::DrawRequest d;
      d.prompts.assign(ids.begin() + a, ids.begin() + b);
      d.per_prompt = K;
      d.guidance = o.guidance;
      d.sample.temperature = o.temperature;
      d.sample.top_k = o.top_k;
      d.seed = mix_seed(o.seed, static_cast<uint64_t>(call), 0xd7a3);
      auto img = drawer.model->draw(d).to(torch::kCPU).to(torch::kFloat);
      TORCH_CHECK(img.dim() == 4 && img.size(0) == (b - a) * K && img.size(1) == 3,
                  "draw: the model returned ", img.sizes(), " for ", b - a, " prompts x ", K, " images");
      parts.push_back(img.clamp(0, 1));
      bar.update(b, "", (b - a) * K);
    }
    bar.finish();
    gen = torch::cat(parts);  // [N * K, 3, H, W], row-major
  }
  const double draw_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - td).count();

  // the judges
  auto real_emb = embed_images(clip, real);
  const double feat_scale = std::sqrt(static_cast<double>(real_emb.size(1)));
  auto score = [&](const torch::Tensor& images, const torch::Tensor& y, const torch::Tensor& g) {
    auto acc = label_accuracy(classify(classifier, images), y);
    auto e = embed_images(clip, images);
    auto ret = retrieval_metrics(e, real_emb, g, groups);
    nlohmann::json j = {{"n", images.size(0)}, {"cas", acc.accuracy}, {"cas_n", acc.n}};
    for (const char* k : {"r1", "r10", "median_rank"})
      if (ret.contains(k)) j[k] = ret[k];
    if (images.size(0) >= 2) {
      auto kid = kernel_inception_distance(e * feat_scale, real_emb * feat_scale, o.kid_subsets, o.kid_subset_size,
                                           o.seed);
      j["kid"] = kid.mean;
      j["kid_std"] = kid.std;
      j["kid_sizes"] = {kid.x_size, kid.y_size};
    }
    return j;
  };

  nlohmann::json res;
  res["generated"] = score(gen, labels.repeat_interleave(K), groups.repeat_interleave(K));
  {
    auto real_acc = label_accuracy(classify(classifier, real), labels);
    res["real"] = {{"cas", real_acc.accuracy}, {"cas_n", real_acc.n}, {"n", N}};
  }

  // nearest_name: the real image of the train row whose text the align run embeds nearest
  std::vector<std::string> test_texts, train_texts;
  for (const auto& r : rows) test_texts.push_back(r.text);
  for (const auto& r : train_rows) train_texts.push_back(r.text);
  auto nearest = embed_texts(clip, test_texts).matmul(embed_texts(clip, train_texts).t()).argmax(1);  // [N]
  std::vector<const Row*> nearest_rows;
  for (int64_t i = 0; i < N; ++i) nearest_rows.push_back(&train_rows[nearest[i].item<int64_t>()]);
  const auto near_images = load_images01(nearest_rows, dpre.image);
  res["nearest_name"] = score(near_images, labels, groups);
  nlohmann::json ex = nlohmann::json::array();
  for (int64_t i = 0; i < std::min<int64_t>(N, 10); ++i)
    ex.push_back({{"prompt", rows[i].text}, {"nearest", nearest_rows[i]->text}, {"nearest_id", nearest_rows[i]->id}});
  res["nearest_name"]["examples"] = ex;

  // vq_ceiling: the drawing run's own image codes of the real image, decoded
  torch::Tensor recon;
  if (dcaps.codes > 0) {
    recon = vq_roundtrip(drawer, real).clamp(0, 1);
    res["vq_ceiling"] = score(recon, labels, groups);
  } else {
    spdlog::warn("draw: the run has no image codes (capabilities().codes = 0): no vq_ceiling");
  }

  // --out: every drawn image, the grids of the first groups and their prompts
  if (!o.out_dir.empty()) {
    make_dirs(o.out_dir);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t k = 0; k < K; ++k)
        write_png_file(fmt::format("{}/{}-{}.png", o.out_dir, file_stem(rows[i].id), k), gen[i * K + k]);
    std::vector<int64_t> cells;
    std::map<int64_t, bool> seen;
    for (int64_t i = 0; i < N && static_cast<int64_t>(cells.size()) < o.grid_cells; ++i)
      if (!seen[group_v[i]]) seen[group_v[i]] = true, cells.push_back(i);
    auto at = torch::tensor(cells, torch::kLong);
    const int64_t cols = std::max<int64_t>(1, o.grid_cols);
    write_png_file(o.out_dir + "/grid.png", doc_grid(gen.index_select(0, at * K), cols));
    write_png_file(o.out_dir + "/grid_real.png", doc_grid(real.index_select(0, at), cols));
    write_png_file(o.out_dir + "/grid_nearest.png", doc_grid(near_images.index_select(0, at), cols));
    if (recon.defined()) write_png_file(o.out_dir + "/grid_vq.png", doc_grid(recon.index_select(0, at), cols));
    std::string txt;
    for (size_t c = 0; c < cells.size(); ++c) {
      const auto& r = rows[cells[c]];
      txt += fmt::format("{}\t{}\t{}\n", c, r.id, r.text);
    }
    atomic_write_text(o.out_dir + "/prompts.txt", txt);
    res["out_dir"] = o.out_dir;
    res["grid_cells"] = cells.size();
  }

  res["rows"] = N;
  res["rows_skipped"] = skipped;
  res["per_prompt"] = K;
  res["guidance"] = o.guidance;
  res["temperature"] = o.temperature;
  res["top_k"] = o.top_k;
  res["seed"] = o.seed;
  res["train_split"] = train_split;
  res["kid_features"] = fmt::format("--clip image embeddings (unit length) x sqrt({})", real_emb.size(1));
  res["draw_seconds"] = draw_seconds;
  res["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

std::string format_drawing(const nlohmann::json& r) {
  std::string out = fmt::format(
      "text -> image: {} prompts of split '{}', {} images each, guidance {} ({:.1f} s drawing, {:.1f} s in all)\n",
      r.value("rows", 0), r.value("split", ""), r.value("per_prompt", 0), r.value("guidance", 0.0),
      r.value("draw_seconds", 0.0), r.value("seconds", 0.0));
  out += fmt::format("  {:<14} {:>6} {:>8} {:>8} {:>8} {:>20}\n", "images", "n", "CAS", "R@1", "R@10", "KID (std)");
  auto num = [](const nlohmann::json& s, const char* k) {
    return s.contains(k) ? fmt::format("{:.4f}", s[k].get<double>()) : std::string("-");
  };
  for (const char* name : {"generated", "nearest_name", "vq_ceiling", "real"}) {
    if (!r.contains(name)) continue;
    const auto& s = r[name];
    const std::string kid =
        s.contains("kid") ? fmt::format("{:.5f} ({:.5f})", s["kid"].get<double>(), s["kid_std"].get<double>()) : "-";
    out += fmt::format("  {:<14} {:>6} {:>8} {:>8} {:>8} {:>20}\n", name, s.value("n", 0), num(s, "cas"),
                       num(s, "r1"), num(s, "r10"), kid);
  }
  if (r.contains("out_dir")) out += fmt::format("  images: {}\n", r["out_dir"].get<std::string>());
  return out;
}

}  // namespace braid::eval
