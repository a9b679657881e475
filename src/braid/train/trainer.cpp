#include "braid/train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <unistd.h>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/core/tensorboard.h"
#include "braid/eval/evaluate.h"
#include "braid/models/calibrated.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"
#include "braid/objectives/gather.h"
#include "braid/objectives/supervised.h"
#include "braid/train/checkpoint.h"
#include "braid/train/optim.h"

namespace braid::train {

namespace {

TrainOptions read_train_options(const Config& c) {
  TrainOptions o;
  o.optimizer = c.get<std::string>("optimizer", o.optimizer);
  o.lr = c.get<double>("lr", o.lr);
  o.weight_decay = c.get<double>("weight_decay", o.weight_decay);
  o.momentum = c.get<double>("momentum", o.momentum);
  o.epochs = c.get<int64_t>("epochs", o.epochs);
  o.max_steps = c.get<int64_t>("max_steps", o.max_steps);
  o.batch_size = c.get<int64_t>("batch_size", o.batch_size);
  o.warmup_steps = c.get<int64_t>("warmup_steps", o.warmup_steps);
  o.schedule = c.get<std::string>("schedule", o.schedule);
  o.min_lr = c.get<double>("min_lr", o.min_lr);
  o.grad_clip = c.get<double>("grad_clip", o.grad_clip);
  o.label_smoothing = c.get<double>("label_smoothing", o.label_smoothing);
  o.loss = c.get<std::string>("loss", o.loss);
  o.eval_every = c.get<int64_t>("eval_every", o.eval_every);
  o.checkpoint_every = c.get<int64_t>("checkpoint_every", o.checkpoint_every);
  o.log_every = c.get<int64_t>("log_every", o.log_every);
  o.gather_negatives = c.get<bool>("gather_negatives", o.gather_negatives);
  o.adamw = c.get<std::string>("adamw", o.adamw);
  o.tensorboard = c.get<bool>("tensorboard", o.tensorboard);
  if (c.has("lr_scale")) {
    auto ls = c.at("lr_scale");
    for (const auto& k : ls.keys()) {
      const double f = ls.get<double>(k, 1.0);
      BRAID_INPUT_CHECK(f > 0 && std::isfinite(f), "{}: recipe key '{}': expected a positive factor, got {}",
                        c.origin(), ls.full(k), f);
      o.lr_scale[k] = f;
    }
  }
  auto bad = [&](const char* key, const char* want) { input_error("{}: recipe key '{}': expected {}", c.origin(), c.full(key), want); };
  if (o.optimizer != "adamw" && o.optimizer != "sgd") bad("optimizer", "adamw or sgd");
  if (o.schedule != "cosine" && o.schedule != "constant") bad("schedule", "cosine or constant");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) bad("lr", "a positive number");
  if (o.epochs <= 0 && o.max_steps <= 0) bad("epochs", "a positive integer (or max_steps > 0)");
  if (o.batch_size <= 0) bad("batch_size", "a positive integer");
  if (o.warmup_steps < 0) bad("warmup_steps", "0 or more");
  if (o.checkpoint_every <= 0) bad("checkpoint_every", "a positive integer");
  if (o.log_every <= 0) bad("log_every", "a positive integer");
  if (o.grad_clip < 0) bad("grad_clip", "0 (off) or a positive number");
  return o;
}

double lr_at(const TrainOptions& o, int64_t step, int64_t total) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) return o.lr * (step + 1) / static_cast<double>(o.warmup_steps);
  if (o.schedule == "constant") return o.lr;
  double span = std::max<int64_t>(1, total - o.warmup_steps);
  double t = std::min(1.0, (step - o.warmup_steps) / span);
  double floor = o.lr * o.min_lr;
  return floor + (o.lr - floor) * 0.5 * (1 + std::cos(M_PI * t));
}

// Each optimizer group at lr x its factor (scales[i] for group i; none = 1).
void set_lr(torch::optim::Optimizer& opt, double lr, const std::vector<double>& scales) {
  auto& groups = opt.param_groups();
  for (size_t i = 0; i < groups.size(); ++i) groups[i].options().set_lr(lr * (i < scales.size() ? scales[i] : 1.0));
}

// train.lr_scale: the parameters grouped by factor (group 0 = factor 1, the rest in key order), with the
// factors; an lr_scale key matching no parameter is an InputError (a misspelt module name).
std::vector<std::pair<double, std::vector<torch::Tensor>>> lr_groups(const torch::nn::Module& m, const TrainOptions& to,
                                                                     const std::string& origin) {
  std::map<std::string, std::vector<torch::Tensor>> by_key;
  std::vector<torch::Tensor> rest;
  for (const auto& p : m.named_parameters()) {
    std::string best;
    for (const auto& [k, f] : to.lr_scale)
      if (p.key().rfind(k, 0) == 0 && k.size() > best.size()) best = k;
    (best.empty() ? rest : by_key[best]).push_back(p.value());
  }
  std::vector<std::pair<double, std::vector<torch::Tensor>>> out{{1.0, rest}};
  for (const auto& [k, f] : to.lr_scale) {
    BRAID_INPUT_CHECK(by_key.count(k), "{}: recipe key 'train.lr_scale.{}': no parameter name starts with '{}'", origin,
                      k, k);
    out.emplace_back(f, by_key[k]);
  }
  return out;
}

// Keep only metrics lines with step <= `step` (a resumed run rewrites what came after its checkpoint).
void truncate_metrics(const std::string& path, int64_t step) {
  if (!file_exists(path)) return;
  std::ifstream f(path);
  std::stringstream kept;
  std::string line;
  while (std::getline(f, line)) {
    try {
      auto j = nlohmann::json::parse(line);
      if (j.value("step", int64_t{0}) <= step && !j.value("final", false)) kept << line << "\n";
    } catch (const nlohmann::json::exception&) {
      break;  // a torn last line from a hard kill
    }
  }
  atomic_write_text(path, kept.str());
}

// Distributed setup: rank 0 sends the other ranks the small files of its run directory
// (RunDir::setup_files: recipe, facts, tokenizer, class map), or the error that stopped its setup.
std::string pack_run_files(const run::RunDir& rd) {
  nlohmann::json files = nlohmann::json::object();
  for (const auto& path : rd.setup_files()) {
    auto text = read_text_file(path);
    files[std::filesystem::path(path).filename().string()] =
        nlohmann::json::binary(std::vector<uint8_t>(text.begin(), text.end()));
  }
  auto bytes = nlohmann::json::to_cbor(nlohmann::json{{"files", files}});
  return std::string(bytes.begin(), bytes.end());
}

std::string pack_setup_error(const std::exception& e) {
  std::string msg = e.what();
  msg = msg.substr(0, msg.find('\n'));
  bool input = dynamic_cast<const InputError*>(&e) != nullptr;
  auto bytes = nlohmann::json::to_cbor(nlohmann::json{{"error", msg}, {"input", input}});
  return std::string(bytes.begin(), bytes.end());
}

// Rethrows rank 0's setup error, or writes its files into a fresh private directory.
std::string unpack_run_files(const std::string& packed, int rank) {
  auto j = nlohmann::json::from_cbor(std::vector<uint8_t>(packed.begin(), packed.end()));
  if (j.contains("error")) {
    auto msg = fmt::format("rank 0 stopped during setup: {}", j["error"].get<std::string>());
    if (j.value("input", false)) throw InputError(msg);
    throw std::runtime_error(msg);
  }
  // File names from the store are checked (plain names only) and land in a fresh mkdtemp folder.
  std::vector<std::pair<std::string, std::string>> files;
  for (auto& [name, v] : j["files"].items()) {
    const auto& b = v.get_binary();
    files.emplace_back(name, std::string(b.begin(), b.end()));
  }
  return write_private_files(files, "rank" + std::to_string(rank));
}

}  // namespace

torch::Tensor batch_loss(run::Pipeline& p, const Batch& batch, double label_smoothing, const std::string& loss) {
  auto& model = *p.model;
  AutocastScope ac(p.device.type(), p.precision);  // bf16 recipes: the forward pass and loss; backward is outside
  torch::Tensor l;
  if (p.task == run::Task::Align || p.task == run::Task::Generate) {
    l = model.objective(batch);
  } else {
    const bool classify = p.task == run::Task::Classify;
    const auto& fn = objectives::supervised_loss(loss, classify, "recipe key 'train.loss'");
    l = fn.fn(model.forward(batch), classify ? batch.labels : batch.targets, label_smoothing);
  }
  if (auto aux = model.auxiliary_loss(); aux.defined()) l = l + aux;
  return l;
}

TrainResult train(const RunOptions& ro) {
  BRAID_INPUT_CHECK(!ro.out.empty(), "--out: a run directory is required");
  const run::RunDir rd(ro.out);
  const std::string last = rd.last(), best = rd.best(), metrics_path = rd.metrics();

  // Data-parallel: join the job first, so that an error in rank 0's setup reaches every rank.
  std::unique_ptr<Distributed> dist;
  if (ro.dist.enabled()) dist = std::make_unique<Distributed>(ro.dist);
  const bool main_rank = !dist || dist->is_main();
  std::string staged;  // rank > 0: rank 0's run files (recipe, tokenizer, ...) unpacked here

  Config recipe;
  std::string manifest_path;
  int threads = 1;
  int64_t seed = 0;
  std::shared_ptr<data::Manifest> manifest;
  TrainOptions to;
  run::Pipeline p;
  std::optional<run::RunLock> lock;  // rank 0 holds the run directory for the life of the trainer
  auto setup = [&] {
    if (main_rank) lock.emplace(rd);
    if (!main_rank) {
      recipe = Config::from_file(run::RunDir(staged).recipe());
      manifest_path = recipe.at("data").get<std::string>("manifest", "");
    } else {
      if (ro.resume) {
        BRAID_INPUT_CHECK(file_exists(last), "--resume: {} has no checkpoint to resume from ({} is missing)", rd.root, last);
        BRAID_INPUT_CHECK(ro.sets.empty(), "--resume continues the run's own recipe; --set is not allowed with it");
        recipe = Config::from_file(rd.recipe());
      } else {
        recipe = ro.recipe_text.empty() ? Config::from_file(ro.recipe) : Config::from_string(ro.recipe_text, ro.recipe);
        for (const auto& s : ro.sets) {
          auto eq = s.find('=');
          BRAID_INPUT_CHECK(eq != std::string::npos && eq > 0, "--set '{}': expected key.path=value", s);
          recipe.set_path(s.substr(0, eq), s.substr(eq + 1));
        }
        BRAID_INPUT_CHECK(!file_exists(last), "{} already holds a run; use --resume to continue it or pick another --out", rd.root);
      }
      manifest_path = ro.data;
      if (manifest_path.empty()) {
        auto mp = recipe.at("data").get<std::string>("manifest", "");
        BRAID_INPUT_CHECK(!mp.empty(), "no data: pass --data MANIFEST or set data.manifest in the recipe");
        manifest_path = ro.resume ? mp : resolve_relative(ro.recipe, mp);
      }
      // stored absolute, so the run can be resumed or evaluated from any directory
      manifest_path = std::filesystem::absolute(manifest_path).lexically_normal().string();
      recipe.at("data").set_path("manifest", nlohmann::json(manifest_path).dump());
    }
    if (ro.seed >= 0) recipe.set_path("seed", std::to_string(ro.seed));
    if (ro.threads >= 0) recipe.set_path("threads", std::to_string(ro.threads));
    if (!ro.device.empty()) recipe.set_path("device", ro.device);
    int want = static_cast<int>(recipe.get<int64_t>("threads", 0));
    if (dist && want <= 0) want = ro.dist.default_threads();
    threads = configure_threads(want);
    seed = recipe.get<int64_t>("seed", 0);
    torch::manual_seed(static_cast<uint64_t>(seed));

    manifest = std::make_shared<data::Manifest>(data::Manifest::load(manifest_path));
    to = read_train_options(recipe.at("train"));
    if (!main_rank) p = run::open_pipeline(staged);
    else p = ro.resume ? run::open_pipeline(rd.root) : run::create_pipeline(recipe, *manifest, rd.root);
    if (!ro.resume && main_rank) atomic_write_text(rd.recipe(), p.recipe.dump());
  };
  if (!dist) {
    setup();
  } else if (main_rank) {
    try {
      setup();
    } catch (const std::exception& e) {
      try {
        dist->share_from_main(pack_setup_error(e), ro.dist.timeout_s * 10);
      } catch (const std::exception&) {
        // the other ranks are gone already: this rank's own error is the one to report
      }
      throw;
    }
    dist->share_from_main(pack_run_files(rd), ro.dist.timeout_s * 10);
  } else {
    staged = unpack_run_files(dist->share_from_main("", ro.dist.timeout_s * 10), dist->rank());
    try {
      setup();
    } catch (...) {
      braid::remove_tree(staged);
      throw;
    }
    braid::remove_tree(staged);
  }
  auto& model = *p.model;
  if (p.task != run::Task::Align && p.task != run::Task::Generate)  // an unknown or mismatched train.loss fails here, not at step 1
    objectives::supervised_loss(to.loss, p.task == run::Task::Classify, p.recipe.origin() + ": recipe key 'train.loss'");

  const std::string train_split = p.recipe.at("data").get<std::string>("train_split", "train");
  const std::string val_split = p.recipe.at("data").get<std::string>("val_split", "val");
  auto train_loader = p.loader(manifest, train_split, true);
  const int world = dist ? dist->world() : 1;
  if (dist) train_loader->set_shard(dist->rank(), world);  // per_epoch below counts global batches
  std::unique_ptr<data::Loader> val_loader;
  if (!manifest->split_indices(val_split).empty()) val_loader = p.loader(manifest, val_split, false);
  else spdlog::warn("no '{}' samples: no validation; the last weights are the final model", val_split);

  const int64_t per_epoch = train_loader->batches_per_epoch();
  const int64_t total = to.max_steps > 0 ? (to.epochs > 0 ? std::min(to.max_steps, to.epochs * per_epoch) : to.max_steps)
                                         : to.epochs * per_epoch;
  const int64_t epochs = (total + per_epoch - 1) / per_epoch;
  const int64_t eval_every = to.eval_every > 0 ? to.eval_every : per_epoch;

  const auto params_list = model.parameters();
  auto groups = lr_groups(model, to, p.recipe.origin());
  auto opt = make_optimizer(to, groups[0].second);
  std::vector<double> lr_scales{1.0};
  for (size_t i = 1; i < groups.size(); ++i) {
    opt->add_param_group(torch::optim::OptimizerParamGroup(groups[i].second, opt->defaults().clone()));
    lr_scales.push_back(groups[i].first);
  }
  for (size_t i = 1; i < groups.size(); ++i)
    spdlog::info("learning rate x{} for {} parameter tensors (train.lr_scale)", groups[i].first, groups[i].second.size());

  TrainState st;
  if (ro.resume) {
    if (dist) {
      // every rank restores rank 0's checkpoint; its bytes travel over the process group
      std::string bytes = dist->broadcast_bytes(main_rank ? read_text_file(last) : std::string(), "the checkpoint");
      std::string src = last, dir;
      if (!main_rank) {  // a fresh private folder (mkdtemp), not a predictable name in the shared temp folder
        dir = write_private_files({{"last.pt", bytes}}, "ckpt-rank" + std::to_string(dist->rank()));
        src = dir + "/last.pt";
      }
      st = load_checkpoint(src, model, *opt);
      if (!main_rank) braid::remove_tree(dir);
    } else {
      st = load_checkpoint(last, model, *opt);
    }
    if (main_rank) truncate_metrics(metrics_path, st.step);
    const int64_t was = st.extra.value("world_size", int64_t{1});
    if (was != world) {
      // Another world size, hence another global batch: continue from the same position in
      // the epoch's sample order (rounded down to a whole global batch) and re-derive the step.
      const int64_t pos = st.batch * to.batch_size * was;
      st.batch = pos >= train_loader->samples() ? per_epoch : std::min(per_epoch, pos / (to.batch_size * world));
      st.step = st.epoch * per_epoch + st.batch;
      spdlog::info("checkpoint was written by {} rank(s), this run has {}: sample {} of epoch {} is batch {}, step {}",
                   was, world, pos, st.epoch + 1, st.batch, st.step);
    }
    spdlog::info("resuming {} at step {} (epoch {}, batch {})", rd.root, st.step, st.epoch + 1, st.batch);
  } else if (main_rank) {
    atomic_write_text(metrics_path, "");
  }
  bool stop_all = false;  // (distributed) some rank was interrupted: all stop after this step
  if (dist) {
    dist->broadcast_module(model);  // rank 0's initial weights everywhere
    dist->attach(model);
    // the other ranks draw their own dropout masks (rank 0 keeps the single-process stream)
    if (!main_rank) torch::manual_seed(mix_seed(static_cast<uint64_t>(seed), static_cast<uint64_t>(dist->rank()),
                                                static_cast<uint64_t>(st.step)));
  }
  double prior_seconds = st.extra.value("seconds", 0.0);

  if (!ro.resume) {
    // one run directory or a list (later runs overwrite the tensors earlier ones loaded)
    auto mc = p.recipe.at("model");
    const YAML::Node in = mc.node()["init_from"];
    const std::vector<std::string> inits =
        in && in.IsSequence() ? mc.get<std::vector<std::string>>("init_from", {})
                              : std::vector<std::string>{mc.get<std::string>("init_from", "")};
    for (const auto& init : inits) {
      if (init.empty()) continue;
      const std::string src = run::RunDir(init).model();
      BRAID_INPUT_CHECK(file_exists(src), "recipe key 'model.init_from': {} has no final model ({} is missing)", init, src);
      int64_t n = run::load_matching_weights(model, src);
      BRAID_INPUT_CHECK(n > 0, "recipe key 'model.init_from': no tensor of {} matches this model", src);
      spdlog::info("initialized {} tensors from {}", n, src);
    }
  }
  const int64_t params = models::count_parameters(model);
  const int64_t trainable = models::count_parameters(model, true);
  if (trainable < params)
    spdlog::info("trainable parameters: {} of {} ({:.2f}%)", trainable, params, 100.0 * trainable / params);
  spdlog::info("run {}: {} on {} ({} train / {} val samples), {} parameters, {} steps, {} thread(s), device {}, {}",
               rd.root, p.recipe.at("model").get<std::string>("name", ""), fmt::join(p.modalities, "+"),
               train_loader->samples(), val_loader ? val_loader->samples() : 0, params, total, threads,
               p.device.str(), precision_name(p.precision));
  if (dist)
    spdlog::info("data-parallel: rank {} of {}, {} samples per rank per epoch, global batch {} ({} x {}), {} gradient "
                 "bucket(s), all-reduce {}", dist->rank(), world, train_loader->shard_samples(),
                 to.batch_size * world, to.batch_size, world, dist->buckets(),
                 ro.dist.overlap ? "overlapped with backward" : "after backward");

  std::ofstream mlog;
  if (main_rank) mlog.open(metrics_path, std::ios::app);
  std::optional<tb::EventWriter> events;  // TensorBoard: a new file per session
  if (main_rank && to.tensorboard) {
    events.emplace(rd.new_tensorboard_file());
    events->start_session(st.step + 1);  // the viewer drops what older files logged after the checkpoint
  }
  auto log_line = [&](const nlohmann::json& j) {
    if (!main_rank) return;
    mlog << j.dump() << "\n";
    mlog.flush();
    if (!events) return;
    std::vector<std::pair<std::string, double>> scalars;  // numbers of the line as "<split or train>/<key>"
    const std::string group = j.value("split", std::string("train"));
    for (const auto& [k, v] : j.items())
      if (v.is_number() && k != "step" && k != "epoch") scalars.emplace_back(group + "/" + k, v.get<double>());
    events->add_scalars(j.at("step").get<int64_t>(), scalars);
  };
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return prior_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto checkpoint = [&] {
    if (!main_rank) return;
    st.extra["seconds"] = elapsed();
    st.extra["world_size"] = world;
    save_checkpoint(last, model, *opt, st);
  };
  auto validate = [&] {
    if (!val_loader) return;
    if (dist) dist->broadcast_buffers(model);  // e.g. BatchNorm statistics: score rank 0's model everywhere
    auto m = eval::evaluate(p, *val_loader, "validate");
    double s = eval::headline_score(m, p.task);
    nlohmann::json line = {{"step", st.step}, {"epoch", st.epoch + 1}, {"split", val_split}};
    for (auto& [k, v] : m.items())
      if (k != "per_class") line[k] = v;
    log_line(line);
    if (s > st.best) {
      st.best = s;
      st.best_step = st.step;
      if (main_rank) run::save_weights(model, best);
    }
    const std::string name = m.contains("score") && p.model->capabilities().scores ? "score" : eval::headline_name(p.task);
    spdlog::info("step {}: val {} {:.4f} (best {:.4f} at step {})", st.step, name, s, st.best, st.best_step);
  };

  if (st.extra.value("validate_pending", false)) {  // the run was interrupted while validating this step
    st.extra.erase("validate_pending");
    validate();
    checkpoint();
  }
  model.train();
  Progress bar("train", total, "steps");
  double ema_loss = NAN;
  while (st.step < total) {
    train_loader->start_epoch(st.epoch, st.batch);
    while (st.step < total) {
      if (dist ? stop_all : interrupted()) {
        checkpoint();
        spdlog::info("interrupted: checkpoint written at step {}; continue with --resume", st.step);
        throw Interrupted();
      }
      auto b = train_loader->next();
      if (!b) break;
      auto batch = b->to(p.device);
      set_lr(*opt, lr_at(to, st.step, total), lr_scales);
      torch::Tensor loss;
      {
        // batch-coupled losses (CLIP, SigLIP, ITC) over the global batch: objectives/gather.h
        std::optional<objectives::GatherScope> global;
        if (dist && to.gather_negatives)
          global.emplace([&](const torch::Tensor& x) { return dist->gather_rows(x, "embedding all-gather"); }, world);
        loss = batch_loss(p, batch, to.label_smoothing, to.loss);
      }
      double lv = loss.item<double>();
      if (!std::isfinite(lv))
        throw std::runtime_error(fmt::format("training diverged: loss is {} at step {}; the last checkpoint is kept "
                                             "(lower train.lr or check the data)", lv, st.step + 1));
      zero_grads(params_list);
      if (dist) dist->before_backward();
      loss.backward();
      if (dist) {
        dist->after_backward();  // gradients averaged over ranks
        auto sums = dist->allreduce_sum({lv, interrupted() ? 1.0 : 0.0}, "loss all-reduce");
        lv = sums[0] / world;  // the global batch's mean loss (equal per-rank batches)
        stop_all = sums[1] > 0;
      }
      torch::Tensor gnorm;  // read (a device sync on CUDA) only when the step is logged
      if (to.grad_clip > 0) gnorm = clip_grad_norm(params_list, to.grad_clip);
      opt->step();
      ++st.step;
      ++st.batch;
      ema_loss = std::isnan(ema_loss) ? lv : 0.9 * ema_loss + 0.1 * lv;
      if (st.step % to.log_every == 0) {
        nlohmann::json line = {{"step", st.step}, {"epoch", st.epoch + 1}, {"loss", lv},
                               {"lr", lr_at(to, st.step - 1, total)}, {"grad_norm", gnorm.defined() ? gnorm.item<double>() : 0.0}};
        for (const auto& [k, v] : model.loss_terms()) line[k] = v;
        log_line(line);
      }
      bar.update(st.step, fmt::format("epoch {}/{} loss {:.4f}", st.epoch + 1, epochs, ema_loss), b->size());
      bool do_eval = st.step % eval_every == 0 || st.step == total;
      if (do_eval) {
        try {
          validate();
        } catch (const Interrupted&) {
          // Ctrl-C during validation: the step is done, so it is checkpointed with its validation still owed;
          // --resume runs that validation first, so the metrics and best.pt match an uninterrupted run.
          st.extra["validate_pending"] = true;
          checkpoint();
          spdlog::info("interrupted during validation: checkpoint written at step {}; --resume validates it first",
                       st.step);
          throw;
        }
      }
      if (do_eval || st.step % to.checkpoint_every == 0) checkpoint();
    }
    if (st.step < total || st.batch >= per_epoch) {
      ++st.epoch;
      st.batch = 0;
    }
  }
  bar.finish(fmt::format("loss {:.4f}", ema_loss));
  checkpoint();
  if (!main_rank) {  // rank 0 alone scores the best weights and writes the final files
    TrainResult r;
    r.run_dir = rd.root;
    r.steps = st.step;
    r.parameters = params;
    r.seconds = elapsed();
    return r;
  }

  // The final model: the best validated weights (or the last ones without validation).
  TrainResult r;
  r.run_dir = rd.root;
  r.steps = st.step;
  r.parameters = params;
  if (val_loader && file_exists(best)) {
    run::load_weights(model, best);
    // post-hoc fits on the validation split (models/calibrated.h), saved with the final model
    if (auto* cal = dynamic_cast<models::Calibrated*>(&model); cal && cal->calibrates()) {
      std::vector<Batch> val;
      eval::for_each_batch(p, *val_loader, "calibrate", [&](const Batch&, const Batch& dev) { val.push_back(dev); });
      if (auto said = cal->calibrate(val); !said.empty()) spdlog::info("{}", said);
    }
    r.val = eval::evaluate(p, *val_loader, "validate best");
  }
  run::save_weights(model, rd.model());
  r.seconds = elapsed();
  nlohmann::json summary = {{"steps", r.steps}, {"seconds", r.seconds}, {"parameters", r.parameters},
                            {"trainable_parameters", trainable}, {"best_step", st.best_step}, {"val", r.val},
                            {"threads", threads}, {"world_size", world}, {"global_batch", to.batch_size * world}};
  atomic_write_text(rd.summary(), summary.dump(1) + "\n");
  spdlog::info("done: {} steps in {:.1f} s; model in {}", r.steps, r.seconds, rd.model());
  return r;
}

}  // namespace braid::train
