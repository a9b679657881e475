// braid/run/chat.h — the chat template's token ids from a run's tokenizer, and the tasks of a generative
// run (recipe `model.tasks`), so that training, `braid generate`, `braid eval` and the server render
// prompts the same way (nn/lm/chat.h renders; models/mllm.h reads the ids).
#pragma once

#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/data/tokenizer.h"
#include "braid/nn/lm/chat.h"

namespace braid::run {

// The ids of the chat pieces (nn::lm::chat_pieces()) in `tok`, and the tasks of `model_cfg` ("tasks": a list
// of {name, modality, prompt, answer}) with their prompts tokenized. InputError naming the tokenizer file
// when a chat piece is not a single token of it (a template/tokenizer mismatch), and naming the recipe key
// of a bad task.
nn::lm::ChatSpec chat_spec(const data::Tokenizer& tok, const Config& model_cfg);

// Prompt text -> ids (no template tokens), as the run's tasks were tokenized.
std::vector<int64_t> prompt_ids(const data::Tokenizer& tok, const std::string& prompt);

// The task named `name`, or the first task reading `modality` when name is empty. InputError listing the
// run's tasks otherwise.
const nn::lm::ChatTask& find_task(const nn::lm::ChatSpec& spec, const std::string& name, const std::string& modality);

// Generated ids -> text: the ids up to (not including) the first stop/eos token, decoded.
std::string decode_answer(const data::Tokenizer& tok, const std::vector<int64_t>& ids, int64_t eos);

}  // namespace braid::run
