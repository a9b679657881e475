#include "braid/nn/lm/chat.h"

#include "braid/core/error.h"

namespace braid::nn::lm {

ChatExample render_chat(const ChatSpec& spec, const std::string& modality, int64_t slot_tokens,
                        const std::vector<int64_t>& prompt, const std::vector<int64_t>* answer) {
  BRAID_INPUT_CHECK(spec.defined(), "chat template: the tokenizer has no <|user|>/<|assistant|> tokens");
  ChatExample e;
  auto put = [&](int64_t id, bool target) {
    e.ids.push_back(id);
    e.target.push_back(target ? 1 : 0);
  };
  put(spec.bos, false);
  put(spec.user, false);
  if (!modality.empty() && slot_tokens > 0) {
    auto it = spec.slots.find(modality);
    BRAID_INPUT_CHECK(it != spec.slots.end(), "chat template: no slot token for modality '{}'", modality);
    e.slot_start = static_cast<int64_t>(e.ids.size());
    e.slot_count = slot_tokens;
    for (int64_t i = 0; i < slot_tokens; ++i) put(it->second, false);
  }
  for (auto id : prompt) put(id, false);
  put(spec.assistant, false);
  if (answer) {
    for (auto id : *answer) put(id, true);
    put(spec.eos, true);
  }
  return e;
}

}  // namespace braid::nn::lm
