// braid/eval/generation.h — what a generative run (task: generate) writes, scored against references:
// exact match, token F1, BLEU-4 and chrF per task, with the baselines of the same table: the closest train
// answer by the model's own encoder embedding (nearest neighbour) and the language model without the input
// (the prior).
//
// Definitions (docs/mllm.md): texts are compared lower-cased with surrounding space trimmed. Tokens are
// whitespace-separated words, and every CJK character is a token of its own. Token F1 is SQuAD's (bag of
// tokens, per sample, averaged). BLEU-4 is corpus BLEU over those tokens (clipped 1..4-gram counts summed
// over the corpus, geometric mean, brevity penalty; 0 when some order has no match). chrF is the mean
// sentence chrF (character 1..6-grams without spaces, beta 2).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "braid/eval/evaluate.h"

namespace braid::eval {

std::vector<std::string> text_tokens(const std::string& s);
double token_f1(const std::string& hyp, const std::string& ref);
double corpus_bleu4(const std::vector<std::string>& hyps, const std::vector<std::string>& refs);
double sentence_chrf(const std::string& hyp, const std::string& ref);
// {"n", "exact", "f1", "bleu4", "chrf"} of aligned hypotheses and references.
nlohmann::json score_texts(const std::vector<std::string>& hyps, const std::vector<std::string>& refs);

struct GenerationOptions {
  std::vector<std::string> tasks;   // task names to run (empty: all); "caption" = the text tasks, "qa" = label tasks
  int64_t max_tokens = 16;
  bool use_cache = true;
  bool baselines = false;           // nearest-neighbour and prior rows (reads the train split)
  std::shared_ptr<const data::Manifest> train_manifest;  // for the nearest-neighbour baseline
  int64_t examples = 0;             // keep this many (id, task, reference, generated) rows in "examples",
                                    // spread evenly over the split
};

// Generates the answer of every selected task for every sample of `loader` that has the task's input
// (greedy), and scores it: {"tasks": {name: scores}, "score": mean of the tasks' F1 (label tasks: accuracy),
// "examples": [...]}. Every selected task also gets its teacher-forced answer "nll" and "perplexity"
// (text-only tasks, modality none, get only these; a run of only those scores 1 / perplexity).
nlohmann::json evaluate_generation(Pipeline& p, data::Loader& loader, const GenerationOptions& o,
                                   const std::string& label = "generate");

}  // namespace braid::eval
