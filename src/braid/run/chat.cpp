#include "braid/run/chat.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "braid/core/error.h"

namespace braid::run {

std::vector<int64_t> prompt_ids(const data::Tokenizer& tok, const std::string& prompt) {
  auto ids = tok.encode(prompt);
  return std::vector<int64_t>(ids.begin(), ids.end());
}

nn::lm::ChatSpec chat_spec(const data::Tokenizer& tok, const Config& model_cfg) {
  nn::lm::ChatSpec s;
  s.pad = data::Tokenizer::kPad;
  s.bos = data::Tokenizer::kBos;
  s.eos = data::Tokenizer::kEos;
  auto id_of = [&](const std::string& piece) -> int64_t {
    const int id = tok.piece_id(piece);
    const auto enc = tok.encode("x" + piece);  // encodes as a user-defined symbol (not split into pieces)
    BRAID_INPUT_CHECK(id >= 0 && !enc.empty() && enc.back() == id,
                      "{}: the tokenizer lacks the chat token '{}' as one piece (a generate run trains its tokenizer "
                      "with {}; a tokenizer given by data.text.tokenizer must hold them as user-defined symbols)",
                      tok.path(), piece, fmt::join(nn::lm::chat_pieces(), " "));
    return id;
  };
  s.user = id_of("<|user|>");
  s.assistant = id_of("<|assistant|>");
  for (const char* m : {"image", "audio", "text"}) s.slots[m] = id_of(std::string("<") + m + ">");

  const YAML::Node tasks = model_cfg.node()["tasks"];
  model_cfg.mark_subtree("tasks");
  const std::string key = model_cfg.full("tasks");
  BRAID_INPUT_CHECK(tasks && tasks.IsSequence() && tasks.size() > 0,
                    "{}: recipe key '{}' must list the tasks ({{name, modality, prompt, answer}})", model_cfg.origin(),
                    key);
  for (size_t i = 0; i < tasks.size(); ++i) {
    const YAML::Node t = tasks[i];
    const std::string where = fmt::format("{}: recipe key '{}[{}]'", model_cfg.origin(), key, i);
    BRAID_INPUT_CHECK(t.IsMap(), "{} must be a map {{name, modality, prompt, answer}}", where);
    for (auto it = t.begin(); it != t.end(); ++it) {
      const auto k = it->first.as<std::string>();
      BRAID_INPUT_CHECK(k == "name" || k == "modality" || k == "prompt" || k == "answer",
                        "{}: unknown key '{}' (expected name, modality, prompt, answer)", where, k);
    }
    auto str = [&](const char* k, const std::string& def) {
      try {
        return t[k] ? t[k].as<std::string>() : def;
      } catch (const YAML::Exception&) {
        input_error("{}.{}: expected a string", where, k);
      }
    };
    nn::lm::ChatTask c;
    c.modality = str("modality", "");
    c.name = str("name", c.modality.empty() ? "lm" : c.modality);
    c.prompt = str("prompt", "");
    c.answer = str("answer", "text");
    BRAID_INPUT_CHECK(c.modality.empty() || c.modality == "image" || c.modality == "audio",
                      "{}.modality: expected image, audio or none, got '{}'", where, c.modality);
    BRAID_INPUT_CHECK(c.answer == "text" || c.answer == "label", "{}.answer: expected text or label, got '{}'", where,
                      c.answer);
    for (const auto& o : s.tasks)
      BRAID_INPUT_CHECK(o.name != c.name, "{}.name: '{}' is used twice", where, c.name);
    c.prompt_ids = prompt_ids(tok, c.prompt);
    s.tasks.push_back(std::move(c));
  }
  return s;
}

const nn::lm::ChatTask& find_task(const nn::lm::ChatSpec& spec, const std::string& name, const std::string& modality) {
  std::vector<std::string> names;
  for (const auto& t : spec.tasks) {
    if (name.empty() ? t.modality == modality : t.name == name) return t;
    names.push_back(t.name + (t.modality.empty() ? "" : " (" + t.modality + ")"));
  }
  if (name.empty()) input_error("this run has no task reading '{}' (its tasks: {})", modality, fmt::join(names, ", "));
  input_error("unknown task '{}' (this run's tasks: {})", name, fmt::join(names, ", "));
}

std::string decode_answer(const data::Tokenizer& tok, const std::vector<int64_t>& ids, int64_t eos) {
  std::vector<int> keep;
  for (auto id : ids) {
    if (id == eos) break;
    keep.push_back(static_cast<int>(id));
  }
  return tok.decode(keep);
}

}  // namespace braid::run
