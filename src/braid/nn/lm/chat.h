// braid/nn/lm/chat.h — the chat template: how one turn (modality tokens, a prompt, an answer) becomes
// token ids, and which positions the training loss reads.
//
//   <bos> <|user|> [<image> x k] prompt... <|assistant|> answer... <eos>
//
// The slot ids (<image>, <audio>) are placeholders: the model replaces their embeddings with the k projected
// encoder tokens. Only the answer and the closing <eos> are targets; the prompt, the slots and padding are
// masked (a template whose special tokens the tokenizer splits into pieces, or a mask shifted by one, makes
// the loss learn the prompt or nothing: tests/mllm_test.cpp checks both against a real tokenizer).
// The ids come from the run's tokenizer (run/pipeline.cpp); this layer never tokenizes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace braid::nn::lm {

// The pieces the tokenizer must hold as single ids (sentencepiece user-defined symbols).
inline const std::vector<std::string>& chat_pieces() {
  static const std::vector<std::string> p{"<|user|>", "<|assistant|>", "<image>", "<audio>", "<text>"};
  return p;
}

// One question a generative run is trained on and asked: read `modality` ("" = none: the LM alone), say
// `prompt`, and answer with the sample's text ("text") or the name of its class ("label").
struct ChatTask {
  std::string name;              // e.g. "caption", "group"
  std::string modality;          // image, audio, text or "" (text-only language modelling)
  std::string prompt;            // the question as written in the recipe
  std::vector<int64_t> prompt_ids;
  std::string answer = "text";   // text | label
};

struct ChatSpec {
  int64_t pad = 0, bos = 2, eos = 3;
  int64_t user = -1, assistant = -1;
  std::map<std::string, int64_t> slots;  // modality -> placeholder id
  std::vector<ChatTask> tasks;
  bool defined() const { return user >= 0 && assistant >= 0; }
};

// One rendered turn: ids [T]; target[t] = 1 where ids[t] is a token the loss predicts (answer and <eos>);
// slot positions [slot_start, slot_start + slot_count) hold the modality tokens.
struct ChatExample {
  std::vector<int64_t> ids;
  std::vector<uint8_t> target;
  int64_t slot_start = 0, slot_count = 0;
};

// The prompt part ends with <|assistant|>: what generation continues. With `answer` given, the answer and
// <eos> follow and are the targets. `slot_tokens` placeholders for `modality` (none when modality is "").
ChatExample render_chat(const ChatSpec& spec, const std::string& modality, int64_t slot_tokens,
                        const std::vector<int64_t>& prompt, const std::vector<int64_t>* answer);

}  // namespace braid::nn::lm
