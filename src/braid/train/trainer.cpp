#include "braid/train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <sstream>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/eval/pipeline.h"
#include "braid/objectives/supervised.h"
#include "braid/train/checkpoint.h"

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

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) g.options().set_lr(lr);
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

}  // namespace

torch::Tensor batch_loss(eval::Pipeline& p, const data::Batch& batch, double label_smoothing, const std::string& loss) {
  auto& model = *p.model;
  torch::Tensor l;
  if (p.task == eval::Task::Align) {
    l = model.objective(batch);
  } else {
    auto out = model.forward(batch);
    if (p.task == eval::Task::Classify)
      l = objectives::cross_entropy(out, batch.labels, label_smoothing);
    else
      l = loss == "ccc" ? objectives::ccc_loss(out, batch.targets) : torch::mse_loss(out, batch.targets);
  }
  if (auto aux = model.auxiliary_loss(); aux.defined()) l = l + aux;
  return l;
}

TrainResult train(const RunOptions& ro) {
  BRAID_INPUT_CHECK(!ro.out.empty(), "--out: a run directory is required");
  const std::string run = ro.out;
  const std::string ckpt_dir = run + "/checkpoints", last = ckpt_dir + "/last.pt", best = ckpt_dir + "/best.pt";
  const std::string metrics_path = run + "/metrics.jsonl";

  Config recipe;
  if (ro.resume) {
    BRAID_INPUT_CHECK(file_exists(last), "--resume: {} has no checkpoint to resume from ({} is missing)", run, last);
    BRAID_INPUT_CHECK(ro.sets.empty(), "--resume continues the run's own recipe; --set is not allowed with it");
    recipe = Config::from_file(run + "/recipe.resolved.yaml");
  } else {
    recipe = ro.recipe_text.empty() ? Config::from_file(ro.recipe) : Config::from_string(ro.recipe_text, ro.recipe);
    for (const auto& s : ro.sets) {
      auto eq = s.find('=');
      BRAID_INPUT_CHECK(eq != std::string::npos && eq > 0, "--set '{}': expected key.path=value", s);
      recipe.set_path(s.substr(0, eq), s.substr(eq + 1));
    }
    BRAID_INPUT_CHECK(!file_exists(last), "{} already holds a run; use --resume to continue it or pick another --out", run);
  }
  if (ro.seed >= 0) recipe.set_path("seed", std::to_string(ro.seed));
  if (ro.threads >= 0) recipe.set_path("threads", std::to_string(ro.threads));
  if (!ro.device.empty()) recipe.set_path("device", ro.device);
  std::string manifest_path = ro.data;
  if (manifest_path.empty()) {
    auto mp = recipe.at("data").get<std::string>("manifest", "");
    BRAID_INPUT_CHECK(!mp.empty(), "no data: pass --data MANIFEST or set data.manifest in the recipe");
    manifest_path = ro.resume ? mp : resolve_relative(ro.recipe, mp);
  }
  // stored absolute, so the run can be resumed or evaluated from any directory
  manifest_path = std::filesystem::absolute(manifest_path).lexically_normal().string();
  recipe.at("data").set_path("manifest", nlohmann::json(manifest_path).dump());

  const int threads = configure_threads(static_cast<int>(recipe.get<int64_t>("threads", 0)));
  const int64_t seed = recipe.get<int64_t>("seed", 0);
  torch::manual_seed(static_cast<uint64_t>(seed));

  auto manifest = std::make_shared<data::Manifest>(data::Manifest::load(manifest_path));
  auto to = read_train_options(recipe.at("train"));
  eval::Pipeline p = ro.resume ? eval::open_pipeline(run) : eval::create_pipeline(recipe, *manifest, run);
  if (!ro.resume) atomic_write_text(run + "/recipe.resolved.yaml", p.recipe.dump());
  auto& model = *p.model;

  const std::string train_split = p.recipe.at("data").get<std::string>("train_split", "train");
  const std::string val_split = p.recipe.at("data").get<std::string>("val_split", "val");
  auto train_loader = p.loader(manifest, train_split, true);
  std::unique_ptr<data::Loader> val_loader;
  if (!manifest->split_indices(val_split).empty()) val_loader = p.loader(manifest, val_split, false);
  else spdlog::warn("no '{}' samples: no validation; the last weights are the final model", val_split);

  const int64_t per_epoch = train_loader->batches_per_epoch();
  const int64_t total = to.max_steps > 0 ? (to.epochs > 0 ? std::min(to.max_steps, to.epochs * per_epoch) : to.max_steps)
                                         : to.epochs * per_epoch;
  const int64_t epochs = (total + per_epoch - 1) / per_epoch;
  const int64_t eval_every = to.eval_every > 0 ? to.eval_every : per_epoch;

  std::unique_ptr<torch::optim::Optimizer> opt;
  if (to.optimizer == "adamw")
    opt = std::make_unique<torch::optim::AdamW>(model.parameters(),
                                                torch::optim::AdamWOptions(to.lr).weight_decay(to.weight_decay));
  else
    opt = std::make_unique<torch::optim::SGD>(
        model.parameters(), torch::optim::SGDOptions(to.lr).momentum(to.momentum).weight_decay(to.weight_decay));

  TrainState st;
  if (ro.resume) {
    st = load_checkpoint(last, model, *opt);
    truncate_metrics(metrics_path, st.step);
    spdlog::info("resuming {} at step {} (epoch {}, batch {})", run, st.step, st.epoch + 1, st.batch);
  } else {
    atomic_write_text(metrics_path, "");
  }
  double prior_seconds = st.extra.value("seconds", 0.0);

  if (!ro.resume) {
    const std::string init = p.recipe.at("model").get<std::string>("init_from", "");
    if (!init.empty()) {
      const std::string src = init + "/model.pt";
      BRAID_INPUT_CHECK(file_exists(src), "recipe key 'model.init_from': {} has no model.pt", init);
      int64_t n = train::load_matching_weights(model, src);
      BRAID_INPUT_CHECK(n > 0, "recipe key 'model.init_from': no tensor of {} matches this model", src);
      spdlog::info("initialized {} tensors from {}", n, src);
    }
  }
  const int64_t params = models::count_parameters(model);
  const int64_t trainable = models::count_parameters(model, true);
  if (trainable < params)
    spdlog::info("trainable parameters: {} of {} ({:.2f}%)", trainable, params, 100.0 * trainable / params);
  spdlog::info("run {}: {} on {} ({} train / {} val samples), {} parameters, {} steps, {} thread(s), device {}", run,
               p.recipe.at("model").get<std::string>("name", ""), fmt::join(p.modalities, "+"),
               train_loader->samples(), val_loader ? val_loader->samples() : 0, params, total, threads,
               p.device.str());

  std::ofstream mlog(metrics_path, std::ios::app);
  auto log_line = [&](const nlohmann::json& j) {
    mlog << j.dump() << "\n";
    mlog.flush();
  };
  auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return prior_seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto checkpoint = [&] {
    st.extra["seconds"] = elapsed();
    save_checkpoint(last, model, *opt, st);
  };
  auto validate = [&] {
    if (!val_loader) return;
    auto m = eval::evaluate(p, *val_loader, "validate");
    double s = eval::headline_score(m, p.task);
    nlohmann::json line = {{"step", st.step}, {"epoch", st.epoch + 1}, {"split", val_split}};
    for (auto& [k, v] : m.items())
      if (k != "per_class") line[k] = v;
    log_line(line);
    if (s > st.best) {
      st.best = s;
      st.best_step = st.step;
      save_weights(model, best);
    }
    spdlog::info("step {}: {} {:.4f} (best {:.4f} at step {})", st.step,
                 std::string("val ") + eval::headline_name(p.task), s, st.best, st.best_step);
  };

  model.train();
  Progress bar("train", total, "steps");
  double ema_loss = NAN;
  while (st.step < total) {
    train_loader->start_epoch(st.epoch, st.batch);
    while (st.step < total) {
      if (interrupted()) {
        checkpoint();
        spdlog::info("interrupted: checkpoint written at step {}; continue with --resume", st.step);
        throw Interrupted();
      }
      auto b = train_loader->next();
      if (!b) break;
      auto batch = b->to(p.device);
      set_lr(*opt, lr_at(to, st.step, total));
      auto loss = batch_loss(p, batch, to.label_smoothing, to.loss);
      double lv = loss.item<double>();
      if (!std::isfinite(lv))
        throw std::runtime_error(fmt::format("training diverged: loss is {} at step {}; the last checkpoint is kept "
                                             "(lower train.lr or check the data)", lv, st.step + 1));
      opt->zero_grad();
      loss.backward();
      double gnorm = 0;
      if (to.grad_clip > 0) gnorm = torch::nn::utils::clip_grad_norm_(model.parameters(), to.grad_clip);
      opt->step();
      ++st.step;
      ++st.batch;
      ema_loss = std::isnan(ema_loss) ? lv : 0.9 * ema_loss + 0.1 * lv;
      if (st.step % to.log_every == 0) {
        nlohmann::json line = {{"step", st.step}, {"epoch", st.epoch + 1}, {"loss", lv},
                               {"lr", lr_at(to, st.step - 1, total)}, {"grad_norm", gnorm}};
        for (const auto& [k, v] : model.loss_terms()) line[k] = v;
        log_line(line);
      }
      bar.update(st.step, fmt::format("epoch {}/{} loss {:.4f}", st.epoch + 1, epochs, ema_loss), b->size());
      bool do_eval = st.step % eval_every == 0 || st.step == total;
      if (do_eval) validate();
      if (do_eval || st.step % to.checkpoint_every == 0) checkpoint();
    }
    if (st.step < total || st.batch >= per_epoch) {
      ++st.epoch;
      st.batch = 0;
    }
  }
  bar.finish(fmt::format("loss {:.4f}", ema_loss));
  checkpoint();

  // The final model: the best validated weights (or the last ones without validation).
  TrainResult r;
  r.run_dir = run;
  r.steps = st.step;
  r.parameters = params;
  if (val_loader && file_exists(best)) {
    load_weights(model, best);
    r.val = eval::evaluate(p, *val_loader, "validate best");
  }
  save_weights(model, run + "/model.pt");
  r.seconds = elapsed();
  nlohmann::json summary = {{"steps", r.steps}, {"seconds", r.seconds}, {"parameters", r.parameters},
                            {"trainable_parameters", trainable}, {"best_step", st.best_step}, {"val", r.val}, {"threads", threads}};
  atomic_write_text(run + "/summary.json", summary.dump(1) + "\n");
  spdlog::info("done: {} steps in {:.1f} s; model in {}/model.pt", r.steps, r.seconds, run);
  return r;
}

}  // namespace braid::train
