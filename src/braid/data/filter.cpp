#include "braid/data/filter.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/manifest.h"

namespace braid::data {

namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;  // keeps each line's key order

static const std::vector<std::string> kRuleKeys{"id", "label", "group", "text", "image", "audio", "series"};

FilterRule parse_filter_rule(const std::string& text, const std::string& what) {
  const auto tilde = text.find('~');
  BRAID_INPUT_CHECK(tilde != std::string::npos && tilde + 1 < text.size(),
                    "{} '{}': expected [SPLITS:]KEY~SUBSTRING (e.g. train,val:image~/google/)", what, text);
  FilterRule r;
  r.substring = text.substr(tilde + 1);
  std::string head = text.substr(0, tilde);
  const auto colon = head.find(':');
  if (colon != std::string::npos) {
    std::string splits = head.substr(0, colon);
    head = head.substr(colon + 1);
    size_t b = 0;
    while (b <= splits.size()) {
      auto e = splits.find(',', b);
      if (e == std::string::npos) e = splits.size();
      const std::string s = splits.substr(b, e - b);
      BRAID_INPUT_CHECK(s == "train" || s == "val" || s == "test",
                        "{} '{}': split '{}' is not train, val or test", what, text, s);
      r.splits.push_back(s);
      b = e + 1;
    }
  }
  r.key = head;
  BRAID_INPUT_CHECK(std::find(kRuleKeys.begin(), kRuleKeys.end(), r.key) != kRuleKeys.end(),
                    "{} '{}': key '{}' is not one of id, label, group, text, image, audio, series", what, text, r.key);
  return r;
}

// The strings a rule compares for `key` in one manifest line (text: every view).
static std::vector<std::string> values_of(const ordered_json& j, const std::string& key) {
  std::vector<std::string> out;
  if (!j.contains(key)) return out;
  const ordered_json& v = j.at(key);
  if (v.is_string()) out.push_back(v.get<std::string>());
  else if (v.is_object())
    for (const auto& [k, t] : v.items()) out.push_back(t.is_string() ? t.get<std::string>() : t.dump());
  else out.push_back(v.dump());  // integer label/group; an inline series is its JSON text
  return out;
}

static bool holds(const FilterRule& r, const std::string& split, const ordered_json& j) {
  if (!r.splits.empty() && std::find(r.splits.begin(), r.splits.end(), split) == r.splits.end()) return true;
  for (const auto& v : values_of(j, r.key))
    if (v.find(r.substring) != std::string::npos) return true;
  return false;
}

FilterReport filter_manifest(const std::string& in, const std::string& out, const FilterOptions& opt) {
  for (const auto& d : opt.drop)
    BRAID_INPUT_CHECK(std::find(all_modalities().begin(), all_modalities().end(), d) != all_modalities().end(),
                      "--drop '{}': not a modality (expected image, audio, text, series)", d);
  BRAID_INPUT_CHECK(!out.empty(), "--out: the filtered manifest's path is required");
  std::error_code ec;
  BRAID_INPUT_CHECK(!(fs::exists(out, ec) && fs::equivalent(in, out, ec)),
                    "{}: --out names the input manifest; write the filtered one elsewhere", out);
  const Manifest m = Manifest::load(in);  // validates every line first

  std::vector<std::string> lines;
  {
    std::ifstream f(in, std::ios::binary);
    BRAID_INPUT_CHECK(f.good(), "{}: cannot open manifest", in);
    std::string l;
    while (std::getline(f, l)) lines.push_back(l);
  }
  const fs::path out_dir = fs::absolute(fs::path(out)).parent_path().lexically_normal();
  // a path of the input as the output must write it: absolute stays absolute, relative is re-based
  auto rebase = [&](const std::string& raw, const std::string& resolved) -> std::string {
    if (fs::path(raw).is_absolute()) return raw;
    return fs::absolute(fs::path(resolved)).lexically_normal().lexically_relative(out_dir).generic_string();
  };

  FilterReport rep;
  rep.out = out;
  std::string text;
  for (const auto& s : m.samples()) {
    ++rep.read;
    ordered_json j = ordered_json::parse(lines.at(static_cast<size_t>(s.line - 1)));
    bool keep = true;
    for (const auto& r : opt.keep) keep = keep && holds(r, s.split, j);
    if (!keep) continue;
    for (const auto& d : opt.drop) j.erase(d);
    BRAID_INPUT_CHECK(j.contains("image") || j.contains("audio") || j.contains("text") || j.contains("series"),
                      "{}: dropping {} leaves sample '{}' without any modality", s.where(in),
                      opt.drop.size() == 1 ? opt.drop[0] : std::string("those modalities"), s.id);
    if (j.contains("image")) j["image"] = rebase(j["image"].get<std::string>(), s.image);
    if (j.contains("audio")) j["audio"] = rebase(j["audio"].get<std::string>(), s.audio);
    if (j.contains("series") && j["series"].is_string())
      j["series"] = rebase(j["series"].get<std::string>(), s.series_path);
    text += j.dump(-1, ' ', false, ordered_json::error_handler_t::strict);
    text += '\n';
    ++rep.kept;
    ++rep.per_split[s.split];
  }
  BRAID_INPUT_CHECK(rep.kept > 0, "{}: no sample of {} passes the --keep rules", in, rep.read);
  if (!out_dir.empty()) make_dirs(out_dir.string());
  atomic_write_text(out, text);
  return rep;
}

}  // namespace braid::data
