#include "braid/data/manifest.h"

#include <cmath>
#include <fstream>
#include <set>
#include <unordered_map>

#include "braid/core/error.h"
#include "braid/core/fs.h"

namespace braid::data {

using nlohmann::json;

bool SampleRecord::has(const std::string& m) const {
  if (m == "image") return !image.empty();
  if (m == "audio") return !audio.empty();
  if (m == "text") return !text.empty();
  if (m == "series") return !series_path.empty() || !series_inline.is_null();
  return false;
}

const std::string* SampleRecord::text_view(const std::string& view) const {
  if (text.empty()) return nullptr;
  if (view.empty() || (text.size() == 1 && text[0].first.empty())) return &text.front().second;
  for (const auto& [v, t] : text)
    if (v == view) return &t;
  return nullptr;
}

static const char* kKeys = "id, split, label, target, group, text, image, audio, series";

static std::string type_name(const json& v) { return v.type_name(); }

Manifest Manifest::load(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open manifest", path);
  Manifest m;
  m.path_ = path;
  std::unordered_map<std::string, int64_t> id_line;
  std::unordered_map<std::string, std::pair<std::string, int64_t>> group_split;
  std::string line;
  int64_t ln = 0;
  while (std::getline(f, line)) {
    ++ln;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::string at = path + ":" + std::to_string(ln);
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number overflowing a double (1e999)
      input_error("{}: not valid JSON ({}); expected one JSON object per line", at, e.what());
    }
    BRAID_INPUT_CHECK(j.is_object(), "{}: expected a JSON object, got {}", at, type_name(j));
    SampleRecord s;
    s.line = ln;
    auto str = [&](const char* key) -> std::string {
      const json& v = j.at(key);
      BRAID_INPUT_CHECK(v.is_string(), "{}: key '{}' must be a string, got {}", at, key, type_name(v));
      BRAID_INPUT_CHECK(!v.get<std::string>().empty(), "{}: key '{}' is empty", at, key);
      return v.get<std::string>();
    };
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const json& v = it.value();
      if (k == "id") {
        s.id = str("id");
      } else if (k == "split") {
        s.split = str("split");
        BRAID_INPUT_CHECK(s.split == "train" || s.split == "val" || s.split == "test",
                          "{}: split '{}' is not one of train, val, test", at, s.split);
      } else if (k == "label") {
        if (v.is_string()) {
          s.label = v.get<std::string>();
          BRAID_INPUT_CHECK(!s.label->empty(), "{}: key 'label' is empty", at);
        } else if (v.is_number_integer()) {
          s.label = std::to_string(v.get<int64_t>());
        } else {
          input_error("{}: key 'label' must be a string or an integer, got {}", at, type_name(v));
        }
      } else if (k == "target") {
        if (v.is_number()) {
          s.target.push_back(v.get<float>());
        } else {
          BRAID_INPUT_CHECK(v.is_array() && !v.empty(), "{}: key 'target' must be a non-empty array of numbers", at);
          for (const auto& x : v) {
            BRAID_INPUT_CHECK(x.is_number(), "{}: key 'target' must hold numbers, got {}", at, type_name(x));
            s.target.push_back(x.get<float>());
          }
        }
        for (float x : s.target) BRAID_INPUT_CHECK(std::isfinite(x), "{}: key 'target' holds a non-finite number", at);
      } else if (k == "group") {
        if (v.is_number_integer())
          s.group = std::to_string(v.get<int64_t>());
        else
          s.group = str("group");
      } else if (k == "text") {
        if (v.is_string()) {
          s.text.emplace_back("", v.get<std::string>());
        } else {
          BRAID_INPUT_CHECK(v.is_object() && !v.empty(),
                            "{}: key 'text' must be a string or an object of named strings, got {}", at, type_name(v));
          for (auto t = v.begin(); t != v.end(); ++t) {
            BRAID_INPUT_CHECK(t.value().is_string(), "{}: text view '{}' must be a string, got {}", at, t.key(),
                              type_name(t.value()));
            s.text.emplace_back(t.key(), t.value().get<std::string>());
          }
        }
      } else if (k == "image" || k == "audio") {
        std::string p = resolve_relative(path, str(k.c_str()));
        (k == "image" ? s.image : s.audio) = p;
      } else if (k == "series") {
        if (v.is_string())
          s.series_path = resolve_relative(path, str("series"));
        else if (v.is_array() && !v.empty())
          s.series_inline = v;
        else
          input_error("{}: key 'series' must be a path or a non-empty array of arrays, got {}", at, type_name(v));
      } else {
        input_error("{}: unknown key '{}' (expected {})", at, k, kKeys);
      }
    }
    BRAID_INPUT_CHECK(!s.id.empty(), "{}: missing key 'id'", at);
    BRAID_INPUT_CHECK(!s.split.empty(), "{}: missing key 'split' (train, val or test)", at);
    auto [it, fresh] = id_line.emplace(s.id, ln);
    BRAID_INPUT_CHECK(fresh, "{}: duplicate id '{}' (first on line {})", at, s.id, it->second);
    bool any = false;
    for (const auto& mod : all_modalities()) any = any || s.has(mod);
    BRAID_INPUT_CHECK(any, "{}: sample '{}' has no modality (expected at least one of text, image, audio, series)", at, s.id);
    if (!s.target.empty()) {
      if (m.target_dim_ == 0) m.target_dim_ = static_cast<int64_t>(s.target.size());
      BRAID_INPUT_CHECK(static_cast<int64_t>(s.target.size()) == m.target_dim_,
                        "{}: 'target' has {} values; earlier lines have {}", at, s.target.size(), m.target_dim_);
    }
    if (!s.group.empty()) {
      auto [g, gfresh] = group_split.emplace(s.group, std::make_pair(s.split, ln));
      BRAID_INPUT_CHECK(gfresh || g->second.first == s.split,
                        "{}: group '{}' is in split '{}' but line {} puts it in '{}'; a group must stay in one split",
                        at, s.group, s.split, g->second.second, g->second.first);
    }
    m.samples_.push_back(std::move(s));
  }
  BRAID_INPUT_CHECK(f.eof(), "{}: read error after line {}", path, ln);
  BRAID_INPUT_CHECK(!m.samples_.empty(), "{}: the manifest holds no samples", path);
  return m;
}

std::vector<int64_t> Manifest::split_indices(const std::string& split) const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < samples_.size(); ++i)
    if (split.empty() || samples_[i].split == split) out.push_back(static_cast<int64_t>(i));
  return out;
}

std::map<std::string, std::map<std::string, int64_t>> Manifest::counts() const {
  std::map<std::string, std::map<std::string, int64_t>> c;
  for (const auto& s : samples_) {
    c[s.split]["samples"]++;
    for (const auto& mod : all_modalities())
      if (s.has(mod)) c[s.split][mod]++;
    if (s.label) c[s.split]["label"]++;
    if (!s.target.empty()) c[s.split]["target"]++;
  }
  return c;
}

std::vector<std::string> Manifest::text_views() const {
  std::vector<std::string> v;
  std::set<std::string> seen;
  for (const auto& s : samples_)
    for (const auto& t : s.text)
      if (seen.insert(t.first).second) v.push_back(t.first);
  return v;
}

}  // namespace braid::data
