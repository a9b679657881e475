// braid train | braid tokenizer train
#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/tokenizer.h"
#include "braid/train/trainer.h"
#include "tools/launch.h"
#include "commands.h"

namespace braid::cli {

namespace {

struct DistArgs {
  int nproc = 1;
  int rank = 0, world_size = 1, master_port = 29500;
  std::string master_addr;
  double timeout_s = train::DistOptions{}.timeout_s;
  std::string allreduce = "overlap";
  double bucket_mb = train::DistOptions{}.bucket_mb;
};

// argv of this invocation without `--nproc N` / `--nproc=N` (what each launched rank runs).
std::vector<std::string> without_nproc(const std::vector<std::string>& argv) {
  std::vector<std::string> out;
  for (size_t i = 0; i < argv.size(); ++i) {
    if (argv[i] == "--nproc") {
      ++i;
      continue;
    }
    if (argv[i].rfind("--nproc=", 0) == 0) continue;
    out.push_back(argv[i]);
  }
  return out;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  BRAID_INPUT_CHECK(end && *end == '\0' && x >= -1000000 && x <= 1000000,
                    "environment variable {}: expected an integer, got '{}'", name, v);
  return static_cast<int>(x);
}


// torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_WORLD_SIZE), Gloo's
// GLOO_SOCKET_IFNAME and braid's BRAID_JOB_TOKEN, where set: the defaults that --rank/--world-size/... override.
void read_dist_env(train::DistOptions& d) {
  d.rank = env_int("RANK", d.rank);
  d.world_size = env_int("WORLD_SIZE", d.world_size);
  if (const char* a = std::getenv("MASTER_ADDR"); a && *a) d.master_addr = a;
  d.master_port = env_int("MASTER_PORT", d.master_port);
  d.local_world_size = env_int("LOCAL_WORLD_SIZE", d.local_world_size);
  if (const char* i = std::getenv("GLOO_SOCKET_IFNAME"); i && *i) d.interface = i;
  if (const char* t = std::getenv("BRAID_JOB_TOKEN"); t) d.job_token = t;  // set by --nproc; docs/distributed.md
}

}  // namespace

void add_train_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto o = std::make_shared<train::RunOptions>();
  auto d = std::make_shared<DistArgs>();
  auto* t = app.add_subcommand("train", "train a recipe into a run directory (its files: docs/cli.md)");
  t->add_option("recipe", o->recipe, "recipe YAML (see recipes/ and docs/recipes.md)")->required();
  t->add_option("--data", o->data, "manifest JSONL (default: the recipe's data.manifest)");
  t->add_option("--out", o->out, "run directory")->required();
  t->add_option("--set", o->sets, "override a recipe value: key.path=value (repeatable)");
  t->add_flag("--resume", o->resume, "continue the run in --out from its last checkpoint");
  t->add_option("--threads", o->threads, "intra-op threads (default: the recipe's `threads`; 0 = all cores)");
  t->add_option("--device", o->device, "cpu, cuda or cuda:N (default: the recipe's `device`)");
  t->add_option("--seed", o->seed, "random seed (default: the recipe's `seed`)");
  auto* g = "Data-parallel (see docs/distributed.md)";
  t->add_option("--nproc", d->nproc, "launch this many local ranks (processes) of one data-parallel job; "
                                     "per-rank batch = train.batch_size")
      ->capture_default_str()->group(g);
  auto* rank_opt = t->add_option("--rank", d->rank, "this process's rank when joining a job (default: $RANK, else 0)")->group(g);
  auto* world_opt = t->add_option("--world-size", d->world_size, "ranks in the job (default: $WORLD_SIZE, else 1 = not distributed)")
      ->group(g);
  t->add_option("--master-addr", d->master_addr, "host of rank 0 (default: $MASTER_ADDR, else 127.0.0.1)")->group(g);
  auto* port_opt = t->add_option("--master-port", d->master_port,
                "rank 0's rendezvous port (default: $MASTER_PORT, else 29500; with --nproc: a free port)")->group(g);
  t->add_option("--dist-timeout", d->timeout_s, "seconds before a missing or silent peer is an error")
      ->capture_default_str()->group(g);
  t->add_option("--allreduce", d->allreduce, "gradient all-reduce: overlap (from gradient hooks, during backward) "
                                             "or after (once backward is done)")
      ->capture_default_str()->group(g);
  t->add_option("--bucket-mb", d->bucket_mb, "gradient bucket size for the all-reduce (MB)")
      ->capture_default_str()->group(g);
  out.emplace_back(t, [o, d, rank_opt, world_opt, port_opt] {
    BRAID_INPUT_CHECK(d->allreduce == "overlap" || d->allreduce == "after",
                      "--allreduce: expected overlap or after, got '{}'", d->allreduce);
    BRAID_INPUT_CHECK(d->nproc >= 1, "--nproc: expected a positive number of processes, got {}", d->nproc);
    if (d->nproc > 1) {
      BRAID_INPUT_CHECK(!rank_opt->count() && !world_opt->count(),
                        "--nproc launches its own ranks; --rank/--world-size are for joining a job started elsewhere");
      BRAID_INPUT_CHECK(!o->out.empty(), "--out: a run directory is required");
      BRAID_INPUT_CHECK(!port_opt->count() || (d->master_port >= 1 && d->master_port <= 65535),
                        "--master-port: expected a TCP port 1..65535, got {}", d->master_port);
      make_dirs(o->out);
      return tools::launch_local(without_nproc(invocation()), d->nproc, port_opt->count() ? d->master_port : 0, o->out);
    }
    auto& dist = o->dist;
    read_dist_env(dist);
    if (rank_opt->count()) dist.rank = d->rank;
    if (world_opt->count()) dist.world_size = d->world_size;
    if (!d->master_addr.empty()) dist.master_addr = d->master_addr;
    if (port_opt->count()) dist.master_port = d->master_port;
    dist.timeout_s = d->timeout_s;
    dist.overlap = d->allreduce == "overlap";
    dist.bucket_mb = d->bucket_mb;
    dist.validate();
    auto r = train::train(*o);
    fmt::print("run {}: {} steps, {:.1f} s, {} parameters\n", r.run_dir, r.steps, r.seconds, r.parameters);
    if (!r.val.is_null()) print_metrics("validation (best model)", r.val);
    return 0;
  });
}

struct TokArgs {
  std::string corpus, out;
  int vocab = 2000;
};

void add_tokenizer_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto* tok = app.add_subcommand("tokenizer", "sub-word tokenizers (sentencepiece)");
  tok->require_subcommand(1);
  auto a = std::make_shared<TokArgs>();
  auto* tr = tok->add_subcommand("train", "train a unigram sentencepiece model on a text file (one sentence a line)");
  tr->add_option("corpus", a->corpus, "text file, one sentence per line")->required();
  tr->add_option("--vocab", a->vocab, "vocabulary size")->capture_default_str();
  tr->add_option("--out", a->out, "model file to write (e.g. tok.model)")->required();
  out.emplace_back(tr, [a] {
    std::ifstream f(a->corpus);
    BRAID_INPUT_CHECK(f.good(), "{}: cannot open corpus", a->corpus);
    std::vector<std::string> lines;
    for (std::string l; std::getline(f, l);) lines.push_back(l);
    data::Tokenizer::train(lines, a->vocab, a->out);
    auto t = data::Tokenizer::load(a->out);
    fmt::print("{}: {} pieces from {} lines\n", a->out, t.vocab_size(), lines.size());
    return 0;
  });
}

}  // namespace braid::cli
