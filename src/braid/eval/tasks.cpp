#include "braid/eval/tasks.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "braid/core/error.h"
#include "braid/eval/cmg.h"
#include "braid/eval/drawing.h"
#include "braid/eval/generation.h"
#include "braid/eval/localization.h"
#include "braid/eval/rerank.h"
#include "braid/eval/zeroshot.h"
#include "braid/run/run_dir.h"

namespace braid::eval {

namespace {

std::unique_ptr<data::Loader> split_loader(Pipeline& p, const TaskRequest& r, const std::string& split) {
  BRAID_INPUT_CHECK(!r.manifest->split_indices(split).empty(), "{}: no samples in split '{}'", r.manifest->path(),
                    split);
  return p.loader(r.manifest, split, false);
}

void need_align(const Pipeline& p, const char* task) {
  BRAID_INPUT_CHECK(p.task == Task::Align,
                    "task {}: only runs trained with task: align have retrieval, zero-shot and probe evaluations", task);
}

// Zero-shot and probes on another label set (emoji subgroups, Fashion-MNIST, the user's own): the
// classes become the labels of `from` instead of the run's class map. Returns "run" or "data".
std::string choose_classes(Pipeline& p, const TaskRequest& r, const std::string& from) {
  BRAID_INPUT_CHECK(r.classes == "auto" || r.classes == "run" || r.classes == "data",
                    "classes '{}': expected run, data or auto", r.classes);
  const auto split = r.manifest->split_indices(r.split);
  const bool known = p.classes && std::all_of(split.begin(), split.end(), [&](int64_t i) {
    const auto& label = r.manifest->samples()[i].label;
    const auto& names = p.classes->names();
    return !label || std::find(names.begin(), names.end(), *label) != names.end();
  });
  BRAID_INPUT_CHECK(known || r.classes != "run", "classes run: {} split '{}' has labels the run was not trained on",
                    r.manifest->path(), r.split);
  if (r.classes == "run" || (r.classes == "auto" && known)) return "run";
  p.classes = std::make_shared<data::ClassMap>(data::ClassMap::from_manifest(*r.manifest, from));
  spdlog::info("classes: the {} labels of {} split '{}'", p.classes->size(), r.manifest->path(), from);
  return "data";
}

nlohmann::json retrieval(Pipeline& p, const TaskRequest& r) {
  auto loader = split_loader(p, r, r.split);
  auto res = evaluate(p, *loader, "eval " + r.split);
  if (p.task == Task::Align && p.model->capabilities().matches)
    res["rerank_itm"] = evaluate_itm_rerank(p, *loader, r.rerank_k);
  return res;
}


nlohmann::json generation(Pipeline& p, const TaskRequest& r, const std::string& which) {
  BRAID_INPUT_CHECK(p.task == Task::Generate, "task {}: only runs trained with task: generate write answers", which);
  GenerationOptions o;
  o.tasks = {which};
  o.max_tokens = r.max_tokens;
  o.examples = r.examples;
  o.baselines = true;
  o.train_manifest = r.manifest;
  auto loader = split_loader(p, r, r.split);
  return evaluate_generation(p, *loader, o, which + " " + r.split);
}

// Event localization (eval/localization.h): the model's per-segment logits [B, T * C] (segment-major) against
// the manifest target's T per-segment ids; with the all-background and position-prior baselines and
// class-agnostic detection.
nlohmann::json localize(Pipeline& p, const TaskRequest& r) {
  BRAID_INPUT_CHECK(p.task == Task::Regress && r.manifest->target_dim() > 0,
                    "task localize: needs a run trained with task: regress on per-segment ids in 'target' (e.g. "
                    "recipes/ave_localize.yaml on braid data build ave)");
  auto loader = split_loader(p, r, r.split);
  torch::NoGradGuard ng;
  const bool was_training = p.model->is_training();
  p.model->eval();
  std::vector<torch::Tensor> preds, truths;
  for_each_batch(p, *loader, "localize " + r.split, [&](const Batch& b, const Batch& dev) {
    AutocastScope ac(p.device.type(), p.precision);
    auto out = p.model->forward(dev).to(torch::kCPU).to(torch::kFloat);
    const int64_t T = b.targets.size(1);
    BRAID_INPUT_CHECK(out.dim() == 2 && out.size(1) % T == 0 && out.size(1) / T >= 2,
                      "task localize: the model's outputs [{}] are not per-segment logits [B, {} * classes]",
                      fmt::join(out.sizes(), ", "), T);
    preds.push_back(out.view({out.size(0), T, -1}).argmax(2));
    truths.push_back(b.targets);
  });
  p.model->train(was_training);
  auto pred = torch::cat(preds), truth = torch::cat(truths);
  auto m = localization_metrics(pred, truth, 1);
  auto base = localization_metrics(torch::zeros_like(pred), truth, 1);
  m["baseline_background"] = {{"segment_accuracy", base["segment_accuracy"]}, {"boundary_f1", base["boundary_f1"]}};
  auto det = localization_metrics(pred.gt(0).to(torch::kLong), truth.gt(0).to(torch::kLong), 1);
  m["detection"] = {{"segment_accuracy", det["segment_accuracy"]},
                    {"boundary_f1", det["boundary_f1"]},
                    {"boundary_f1_exact", det["boundary_f1_exact"]}};
  // The position prior: at every segment the id most frequent there in the train split (ties: the lower id); for
  // detection, event where more train sequences have an event there than not.
  const std::string train_split = p.recipe.at("data").get<std::string>("train_split", "train");
  const int64_t T = truth.size(1);
  std::vector<std::map<int64_t, int64_t>> counts(static_cast<size_t>(T));
  for (auto i : r.manifest->split_indices(train_split)) {
    const auto& tg = r.manifest->samples()[static_cast<size_t>(i)].target;
    if (static_cast<int64_t>(tg.size()) != T) continue;
    for (int64_t t = 0; t < T; ++t) counts[static_cast<size_t>(t)][std::llround(tg[static_cast<size_t>(t)])]++;
  }
  auto prior = torch::zeros({T}, torch::kLong), event_prior = torch::zeros({T}, torch::kLong);
  for (int64_t t = 0; t < T; ++t) {
    int64_t best = 0, n = -1, events = 0, background = 0;
    for (const auto& [id, c] : counts[static_cast<size_t>(t)]) {
      if (c > n) best = id, n = c;
      (id > 0 ? events : background) += c;
    }
    prior[t] = best;
    event_prior[t] = events > background ? 1 : 0;  // detection: event vs background at this position
  }
  auto pm = localization_metrics(prior.unsqueeze(0).expand_as(truth).contiguous(), truth, 1);
  auto pd = localization_metrics(event_prior.unsqueeze(0).expand_as(truth).contiguous(), truth.gt(0).to(torch::kLong), 1);
  m["baseline_position"] = {{"segment_accuracy", pm["segment_accuracy"]},
                            {"boundary_f1", pm["boundary_f1"]},
                            {"detection_segment_accuracy", pd["segment_accuracy"]},
                            {"detection_boundary_f1", pd["boundary_f1"]},
                            {"train_split", train_split}};
  m["split"] = r.split;
  return m;
}

}  // namespace

std::string default_task(const Pipeline& p) {
  if (p.model->capabilities().scores) return "metrics";  // its own metrics (a tokenizer's PSNR, a drawer's code NLL)
  if (p.task == Task::Generate) return "caption";
  return p.task == Task::Align ? "retrieval" : "metrics";
}

const TaskRegistry& task_registry() {
  static const TaskRegistry reg = [] {
    TaskRegistry t("eval task");
    t.add("metrics", "the run's own metrics: accuracy, macro-F1 and per-class recall (classify), CCC and MSE "
                     "(regress), retrieval (align), a self-scoring model's own (vq_image: PSNR, SSIM, code usage; "
                     "early_fusion: code NLL)",
          [](const Config&, Pipeline& p, const TaskRequest& r) { return retrieval(p, r); });
    t.add("retrieval", "align runs: R@1/5/10 and median rank both ways for every modality pair (relevant = same "
                       "group); models with a matching head also re-rank the top k by ITM",
          [](const Config&, Pipeline& p, const TaskRequest& r) {
            need_align(p, "retrieval");
            return retrieval(p, r);
          });
    t.add("zeroshot", "align runs: classify each embedded modality by the text embeddings of prompted class names "
                      "(top-1/top-5 vs chance)",
          [](const Config&, Pipeline& p, const TaskRequest& r) {
            need_align(p, "zeroshot");
            auto source = choose_classes(p, r, r.split);
            auto loader = split_loader(p, r, r.split);
            auto res = evaluate_zeroshot(p, *loader, r.templates.empty() ? default_templates() : r.templates);
            res["class_source"] = source;
            return res;
          });
    t.add("probe", "align runs: a logistic-regression probe on frozen embeddings of the train split, scored on "
                   "the evaluated split",
          [](const Config&, Pipeline& p, const TaskRequest& r) {
            need_align(p, "probe");
            const std::string train_split = p.recipe.at("data").get<std::string>("train_split", "train");
            auto source = choose_classes(p, r, train_split);
            auto train = split_loader(p, r, train_split);
            auto test = split_loader(p, r, r.split);
            auto res = evaluate_probe(p, *train, *test);
            res["class_source"] = source;
            res["train_split"] = train_split;
            return res;
          });
    t.add("cmg", "cross-modal generalization: a head trained on modality A's embeddings, tested on B's; code "
                 "health for models with a shared codebook (docs/unicode.md)",
          [](const Config&, Pipeline& p, const TaskRequest& r) {
            CmgOptions o;
            o.test_split = r.split;
            o.epochs = r.cmg_epochs;
            return evaluate_cmg(p, r.manifest, o);
          });
    t.add("caption", "generate runs: the answers of the text tasks (name an image, transcribe a spoken name) vs "
                     "the references: exact match, token F1, BLEU-4, chrF, with the nearest-train-answer and "
                     "LM-prior baselines",
          [](const Config&, Pipeline& p, const TaskRequest& r) { return generation(p, r, "caption"); });
    t.add("draw", "text -> image runs: draw each row's text, score the images by a classifier trained on real "
                  "images (CAS, --classifier), retrieval of the row's group and KID in an align run's image space "
                  "(--clip), against the nearest-train-name and image-token (VQ) ceiling baselines",
          [](const Config&, Pipeline& p, const TaskRequest& r) {
            BRAID_INPUT_CHECK(!r.classifier.empty() && !r.clip.empty(),
                              "task draw: give --classifier RUN (a classify run on images) and --clip RUN (an align "
                              "run embedding image and text)");
            const std::string device = p.device.str();
            auto clf = run::open_run(r.classifier, r.judge_weights, device);
            auto clip = run::open_run(r.clip, r.judge_weights, device);
            DrawEvalOptions o;
            o.split = r.split;
            o.guidance = r.guidance;
            o.per_prompt = r.per_prompt;
            o.temperature = r.temperature;
            o.top_k = r.top_k;
            o.seed = r.seed;
            o.out_dir = r.out_dir;
            auto res = evaluate_drawing(p, clf, clip, r.manifest, o);
            res["classifier"] = r.classifier;
            res["clip"] = r.clip;
            return res;
          });
    t.add("qa", "generate runs: the answers of the label tasks (which group is this?): accuracy, with the "
                "nearest-neighbour and LM-prior baselines",
          [](const Config&, Pipeline& p, const TaskRequest& r) { return generation(p, r, "qa"); });
    t.add("localize", "event localization runs (ave_localizer on braid data build ave): segment accuracy and "
                      "event-boundary F1 (start and end within 1 segment, and exact) vs the all-background and the "
                      "per-position majority (train split) baselines, and class-agnostic detection",
          [](const Config&, Pipeline& p, const TaskRequest& r) { return localize(p, r); });
    return t;
  }();
  return reg;
}

}  // namespace braid::eval
