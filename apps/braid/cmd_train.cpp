// braid train | braid tokenizer train
#include <fmt/format.h>

#include <fstream>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/data/tokenizer.h"
#include "braid/train/trainer.h"
#include "commands.h"

namespace braid::cli {

void add_train_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto o = std::make_shared<train::RunOptions>();
  auto* t = app.add_subcommand("train", "train a recipe; writes RUN_DIR/{recipe.resolved.yaml, metrics.jsonl, "
                                        "checkpoints/, model.pt}");
  t->add_option("recipe", o->recipe, "recipe YAML (see recipes/ and docs/recipes.md)")->required();
  t->add_option("--data", o->data, "manifest JSONL (default: the recipe's data.manifest)");
  t->add_option("--out", o->out, "run directory")->required();
  t->add_option("--set", o->sets, "override a recipe value: key.path=value (repeatable)");
  t->add_flag("--resume", o->resume, "continue the run in --out from its last checkpoint");
  t->add_option("--threads", o->threads, "intra-op threads (default: the recipe's `threads`; 0 = all cores)");
  t->add_option("--device", o->device, "cpu, cuda or cuda:N (default: the recipe's `device`)");
  t->add_option("--seed", o->seed, "random seed (default: the recipe's `seed`)");
  out.emplace_back(t, [o] {
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
