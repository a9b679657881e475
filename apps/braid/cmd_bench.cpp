// braid bench speed | bench fusion | bench gemm | bench pipeline | bench lm
#include <fmt/format.h>

#include <cstdlib>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "tools/fusion_bench.h"
#include "tools/lm_bench.h"
#include "tools/pipeline_bench.h"
#include "tools/speed.h"
#include "commands.h"

namespace braid::cli {

struct SpeedArgs {
  train::RunOptions run;
  tools::SpeedOptions speed;
  std::string precision;  // --precision ("" = the recipe's)
  bool json = false;
};

struct PipelineArgs {
  tools::PipelineBenchOptions o;
  bool json = false;
};

struct FusionArgs {
  tools::FusionBenchOptions o;
  std::string methods = "all";
  std::vector<std::string> model_recipes;  // METHOD=RECIPE
};

void add_bench_commands(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto* bench = app.add_subcommand("bench", "benchmarks (speed on one batch; fusion methods side by side)");
  bench->require_subcommand(1);

  auto f = std::make_shared<FusionArgs>();
  f->o.recipe = "recipes/emoji_fusion_bench.yaml";
  auto* fu = bench->add_subcommand("fusion", "train every fusion method and unimodal baseline over seeds; score "
                                             "accuracy, noise and missing-modality robustness, and cost");
  fu->add_option("--recipe", f->o.recipe, "base recipe (a fusion_classifier)")->capture_default_str();
  fu->add_option("--data", f->o.data, "manifest JSONL")->required();
  fu->add_option("--methods", f->methods, "comma list of: all (every fusion_classifier method below), fusion names "
                                          "(concat, tfn, ...), early, late_mean, late_weighted, late_poe, "
                                          "uni:<modality>, and the temporal models mult, mfn, mctn (group: temporal)")
      ->capture_default_str();
  fu->add_option("--model-recipe", f->model_recipes,
                 "METHOD=RECIPE: the recipe whose model: section a temporal method (mult, mfn, mctn) trains "
                 "(repeatable; default: <first word of --recipe's name>_<method>.yaml beside it, e.g. "
                 "recipes/avmnist_mult.yaml); data, epochs and seeds stay the base recipe's");
  fu->add_option("--seeds", f->o.seeds, "seeds per method")->capture_default_str();
  fu->add_option("--out", f->o.out, "results folder (results.json, results.md, noise_*.svg, runs/)")->required();
  fu->add_option("--threads", f->o.threads, "threads per training run (0 = cores / jobs)")->capture_default_str();
  fu->add_option("--jobs", f->o.jobs, "training runs at a time (2 on 2 cores: each run on 1 thread)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  fu->add_option("--split", f->o.split, "evaluation split")->capture_default_str();
  fu->add_option("--set", f->o.sets, "recipe override for every run: key.path=value (repeatable)");
  out.emplace_back(fu, [f] {
    f->o.methods.clear();
    std::string cur;
    for (char c : f->methods + ",") {
      if (c == ',') {
        if (!cur.empty()) f->o.methods.push_back(cur);
        cur.clear();
      } else if (c != ' ') {
        cur += c;
      }
    }
    f->o.model_recipes.clear();
    for (const auto& mr : f->model_recipes) {
      auto eq = mr.find('=');
      BRAID_INPUT_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < mr.size(),
                        "--model-recipe '{}': expected METHOD=RECIPE (e.g. mult=recipes/avmnist_mult.yaml)", mr);
      f->o.model_recipes[mr.substr(0, eq)] = mr.substr(eq + 1);
    }
    auto r = tools::run_fusion_bench(f->o);
    fmt::print("{}", read_text_file(f->o.out + "/results.md"));
    return 0;
  });

  struct GemmArgs {
    int64_t n = 1024;
    int threads = 0, repeats = 5;
    bool json = false;
  };
  auto g = std::make_shared<GemmArgs>();
  auto* gm = bench->add_subcommand("gemm", "the machine's fp32 matrix-multiply peak (GFLOP/s) through this build's BLAS");
  gm->add_option("--n", g->n, "matrix size n (n x n times n x n)")->capture_default_str();
  gm->add_option("--threads", g->threads, "threads (0 = all cores)")->capture_default_str();
  gm->add_option("--repeats", g->repeats, "timed runs; the median is reported")->capture_default_str();
  gm->add_flag("--json", g->json, "print one JSON line");
  out.emplace_back(gm, [g] {
    auto r = tools::measure_gemm(g->n, g->threads, g->repeats);
    if (g->json)
      fmt::print("{}\n", r.dump());
    else
      fmt::print("sgemm {}x{}: {:.1f} GFLOP/s on {} thread(s), OPENBLAS_CORETYPE={}\n", g->n, g->n,
                 r["gflops"].get<double>(), r["threads"].get<int>(), r["openblas_coretype"].get<std::string>());
    return 0;
  });

  auto pl = std::make_shared<PipelineArgs>();
  auto* pp = bench->add_subcommand("pipeline", "preprocessing throughput: image PNG decode + resize + normalize, or "
                                               "audio WAV decode + resample + log-mel, over a manifest's files");
  pp->add_option("--data", pl->o.manifest, "manifest JSONL")->required();
  pp->add_option("--modality", pl->o.modality, "image or audio")->capture_default_str();
  pp->add_option("--workers", pl->o.workers, "decoding threads (each single-threaded, as in the loader)")
      ->capture_default_str();
  pp->add_option("--threads", pl->o.threads, "intra-op threads with one worker (0 = all cores)")->capture_default_str();
  pp->add_option("--limit", pl->o.limit, "use the first N samples with the modality (0 = all)")->capture_default_str();
  pp->add_option("--repeats", pl->o.repeats, "timed passes; the median is reported")->capture_default_str();
  pp->add_option("--dump", pl->o.dump, "write the first sample's tensor to this .npy file");
  pp->add_flag("--json", pl->json, "print one JSON line");
  out.emplace_back(pp, [pl] {
    auto r = tools::measure_pipeline(pl->o);
    if (pl->json) {
      fmt::print("{}\n", r.dump());
    } else {
      fmt::print("{} samples/s  {:.1f}  (median of {}; {} files, workers {}, threads {})\n", pl->o.modality,
                 r["samples_per_s"].get<double>(), pl->o.repeats, r["samples"].get<int64_t>(), pl->o.workers,
                 r["threads"].get<int>());
    }
    return 0;
  });

  struct LMArgs {
    tools::LMBenchOptions o;
    bool json = false;
  };
  auto lmb = std::make_shared<LMArgs>();
  auto* lmc = bench->add_subcommand("lm", "training and generation tokens/s of the Llama-family language model "
                                          "(random init; for comparison with a PyTorch peer: bench/lm_speed.sh)");
  lmc->add_option("--dim", lmb->o.dim, "model width")->capture_default_str();
  lmc->add_option("--layers", lmb->o.layers, "decoder blocks")->capture_default_str();
  lmc->add_option("--heads", lmb->o.heads, "query heads")->capture_default_str();
  lmc->add_option("--kv-heads", lmb->o.kv_heads, "key/value heads")->capture_default_str();
  lmc->add_option("--hidden", lmb->o.hidden, "SwiGLU width")->capture_default_str();
  lmc->add_option("--vocab", lmb->o.vocab, "vocabulary size")->capture_default_str();
  lmc->add_flag("--tie", lmb->o.tie, "tie the output projection to the embeddings");
  lmc->add_option("--seq", lmb->o.seq, "training sequence length")->capture_default_str();
  lmc->add_option("--batch", lmb->o.batch, "training batch")->capture_default_str();
  lmc->add_option("--prompt", lmb->o.prompt, "prompt length for generation")->capture_default_str();
  lmc->add_option("--new-tokens", lmb->o.new_tokens, "tokens generated per row")->capture_default_str();
  lmc->add_option("--steps", lmb->o.steps, "timed training steps (and generate() calls) per repeat")
      ->capture_default_str();
  lmc->add_option("--warmup", lmb->o.warmup, "untimed steps (and generate() calls) first")->capture_default_str();
  lmc->add_option("--repeats", lmb->o.repeats, "repeats; the median is reported")->capture_default_str();
  lmc->add_option("--threads", lmb->o.threads, "intra-op threads (0 = all cores)")->capture_default_str();
  lmc->add_option("--seed", lmb->o.seed, "seed of the weights, batch and prompts")->capture_default_str();
  lmc->add_option("--cases", lmb->o.cases, "all, or a comma list of train, b1_cache, b1_nocache, b8_cache, b8_nocache; forward (inference logits of [batch, seq] at B = 1 and --batch) runs only when named")
      ->capture_default_str();
  lmc->add_flag("--json", lmb->json, "print one JSON line");
  out.emplace_back(lmc, [lmb] {
    auto r = tools::measure_lm(lmb->o);
    if (lmb->json) {
      fmt::print("{}\n", r.dump());
    } else {
      for (const char* k : {"train_tokens_per_s", "gen_tokens_per_s_b1_cache", "gen_tokens_per_s_b1_nocache",
                            "gen_tokens_per_s_b8_cache", "gen_tokens_per_s_b8_nocache"})
        if (r.contains(k)) fmt::print("{:<28}{:.1f}\n", k, r[k].get<double>());
      fmt::print("parameters {}  threads {}\n", r["parameters"].get<int64_t>(), r["threads"].get<int>());
    }
    return 0;
  });

  auto a = std::make_shared<SpeedArgs>();
  auto* sp = bench->add_subcommand("speed", "time training steps and inference of a recipe's model on its first "
                                            "train batch (for comparison with a PyTorch peer)");
  sp->add_option("recipe", a->run.recipe, "recipe YAML")->required();
  sp->add_option("--data", a->run.data, "manifest JSONL (default: the recipe's data.manifest)");
  sp->add_option("--set", a->run.sets, "override a recipe value: key.path=value (repeatable)");
  sp->add_option("--threads", a->run.threads, "intra-op threads (default: the recipe's `threads`; 0 = all cores)");
  sp->add_option("--device", a->run.device, "cpu, cuda or cuda:N");
  sp->add_option("--steps", a->speed.steps, "timed steps per repeat")->capture_default_str();
  sp->add_option("--warmup", a->speed.warmup, "untimed warm-up steps")->capture_default_str();
  sp->add_option("--repeats", a->speed.repeats, "repeats; the median is reported")->capture_default_str();
  sp->add_option("--dump", a->speed.dump_dir, "write the batch (.npy) and model.json here for a peer");
  sp->add_option("--profile", a->speed.profile,
                 "after timing, write a profiler trace (Chrome JSON) of 2 training steps + 2 inference batches here");
  sp->add_flag("--op-profile", a->speed.op_profile,
              "after timing, time the inference forwards per op (B and B = 1; self ms per forward, % of the "
              "total; core/op_profile.h) and print the tables");
  sp->add_option("--op-clock", a->speed.op_clock, "what --op-profile measures: wall, or cpu (the thread's CPU time: "
                                                 "for 1-thread profiles on a loaded host)")->capture_default_str();
  sp->add_flag("--fused", a->speed.fused, "use the Transformer block's fused CPU kernels (residual + LayerNorm, "
                                         "bias + GELU; nn/fused.h)");
  sp->add_flag("--prepack", a->speed.prepack, "inference through pre-packed oneDNN weights (nn/prepack.h)");
  sp->add_option("--precision", a->precision, "fp32, bf16 or auto: the recipe's `precision`; int8: fp32 training and "
                                              "inference through int8 oneDNN weights (VNNI CPUs; nn/prepack.h)")
      ->check(CLI::IsMember({"fp32", "bf16", "auto", "int8"}));
  sp->add_flag("--infer-only", a->speed.infer_only, "time inference only (no training steps; for bench/engine.sh PARTS=ort)");
  sp->add_flag("--json", a->json, "print one JSON line");
  out.emplace_back(sp, [a] {
    // BRAID_ADAMW=loop|foreach|fused|auto: an override of train.adamw for benchmark scripts (bench/gpu.sh)
    if (const char* e = std::getenv("BRAID_ADAMW"); e && *e) a->run.sets.push_back(std::string("train.adamw=") + e);
    if (!a->precision.empty()) a->run.sets.push_back("precision=" + (a->precision == "int8" ? "fp32" : a->precision));
    a->speed.int8 = a->precision == "int8";
    auto r = tools::measure_speed(a->run, a->speed);
    if (a->json) {
      fmt::print("{}\n", r.dump());
    } else {
      if (r.contains("train_steps_per_s")) fmt::print("train steps/s        {:.2f}\n", r["train_steps_per_s"].get<double>());
      fmt::print("infer samples/s (B)  {:.1f}  (B = {})\n", r["infer_samples_per_s_b64"].get<double>(),
                 r["batch_size"].get<int64_t>());
      fmt::print("infer samples/s (1)  {:.1f}\n", r["infer_samples_per_s_b1"].get<double>());
      fmt::print("parameters {}  threads {}\n", r["parameters"].get<int64_t>(), r["threads"].get<int>());
      if (r.contains("op_profile"))
        for (const char* k : {"batch", "one"}) {
          const auto& t = r["op_profile"][k];
          fmt::print("\nper-op self time per forward ({} clock), B = {} ({} forwards):\n{}", t["clock"].get<std::string>(),
                     t["batch_size"].get<int64_t>(), t["forwards"].get<int64_t>(), t["table"].get<std::string>());
        }
    }
    return 0;
  });
}

}  // namespace braid::cli
