#include "braid/core/config.h"

#include <cstdint>

namespace braid {
namespace {
// Recipe text quoted in an error (a YAML parser message, a value): control bytes as \xHH, so the error
// stays one line whatever the recipe holds (found by fuzz_recipe; fuzz/regressions/recipe/).
std::string one_line(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out += static_cast<char>(c);
  }
  return out;
}

// Every key of the tree must be a plain name: a scalar without control characters (a YAML key can be a
// list or span lines; the fuzzer found both reaching errors that quote the key path).
// Nesting is bounded: an alias can make the tree a cycle ('a: &x [*x]'), which every later walk of the
// recipe (the unknown-key check, dump) would follow until the stack overflows (found by fuzz_recipe).
constexpr int kMaxRecipeDepth = 64;

void check_keys(const YAML::Node& n, const std::string& origin, const std::string& path, int depth = 0) {
  if (depth > kMaxRecipeDepth)
    input_error("{}: the recipe nests deeper than {} levels at '{}' (or an alias refers to itself)", origin,
                kMaxRecipeDepth, one_line(path.substr(0, 60)));
  if (n.IsSequence()) {
    for (const auto& c : n) check_keys(c, origin, path, depth + 1);
    return;
  }
  if (!n.IsMap()) return;
  for (auto it = n.begin(); it != n.end(); ++it) {
    const bool scalar = it->first.IsScalar();
    const std::string key = scalar ? it->first.Scalar() : "";
    bool plain = scalar;
    for (unsigned char c : key) plain = plain && c >= 0x20 && c != 0x7f;
    if (!plain) {
      YAML::Emitter e;
      e << YAML::Flow << it->first;
      std::string shown = one_line(e.c_str());
      if (shown.size() > 60) shown = shown.substr(0, 57) + "...";
      input_error("{}: a recipe key{} must be a plain name, got '{}'", origin, path.empty() ? "" : " under '" +
                  one_line(path) + "'", shown);
    }
    check_keys(it->second, origin, path.empty() ? key : path + "." + key, depth + 1);
  }
}
}  // namespace
}  // namespace braid

namespace braid {
namespace detail {
template <> const char* yaml_type_name<bool>() { return "a boolean (true/false)"; }
template <> const char* yaml_type_name<int>() { return "an integer"; }
template <> const char* yaml_type_name<int64_t>() { return "an integer"; }
template <> const char* yaml_type_name<double>() { return "a number"; }
template <> const char* yaml_type_name<float>() { return "a number"; }
template <> const char* yaml_type_name<std::string>() { return "a string"; }
template <> const char* yaml_type_name<std::vector<std::string>>() { return "a list of strings"; }
template <> const char* yaml_type_name<std::vector<int64_t>>() { return "a list of integers"; }
template <> const char* yaml_type_name<std::vector<double>>() { return "a list of numbers"; }
}  // namespace detail

Config::Config() : Config(YAML::Node(YAML::NodeType::Map), "", "<recipe>", std::make_shared<std::set<std::string>>()) {}

Config::Config(YAML::Node node, std::string path, std::string origin, std::shared_ptr<std::set<std::string>> used)
    : node_(node), path_(std::move(path)), origin_(std::move(origin)), used_(std::move(used)) {}

Config Config::from_string(const std::string& yaml, const std::string& origin) {
  YAML::Node n;
  try {
    n = YAML::Load(yaml);
  } catch (const YAML::ParserException& e) {
    input_error("{}:{}: invalid YAML: {}", origin, e.mark.line + 1, one_line(e.msg));
  }
  if (!n || n.IsNull()) n = YAML::Node(YAML::NodeType::Map);
  BRAID_INPUT_CHECK(n.IsMap(), "{}: a recipe must be a YAML map of keys", origin);
  check_keys(n, origin, "");
  return Config(n, "", origin, std::make_shared<std::set<std::string>>());
}

Config Config::from_file(const std::string& path) {
  YAML::Node n;
  try {
    n = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    input_error("{}: cannot open recipe file", path);
  } catch (const YAML::ParserException& e) {
    input_error("{}:{}: invalid YAML: {}", path, e.mark.line + 1, one_line(e.msg));
  }
  if (!n || n.IsNull()) n = YAML::Node(YAML::NodeType::Map);
  BRAID_INPUT_CHECK(n.IsMap(), "{}: a recipe must be a YAML map of keys", path);
  check_keys(n, path, "");
  return Config(n, "", path, std::make_shared<std::set<std::string>>());
}

void Config::mark(const std::string& key) const { used_->insert(full(key)); }



Config Config::at(const std::string& key) const {
  mark(key);
  YAML::Node n = node_[key];
  if (!n || n.IsNull()) {
    node_[key] = YAML::Node(YAML::NodeType::Map);
    n = node_[key];
  }
  BRAID_INPUT_CHECK(n.IsMap(), "{}: recipe key '{}': expected a map of keys, got '{}'", origin_, full(key), describe(n));
  return Config(n, full(key), origin_, used_);
}

bool Config::has(const std::string& key) const {
  const YAML::Node& cn = node_;
  YAML::Node n = cn[key];
  return n && !n.IsNull();
}

std::vector<std::string> Config::keys() const {
  std::vector<std::string> out;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    BRAID_INPUT_CHECK(it->first.IsScalar(), "{}: a recipe key must be a plain name, got '{}'", origin_,
                      describe(it->first));
    out.push_back(it->first.as<std::string>());
  }
  return out;
}

void Config::mark_subtree(const std::string& key) const {
  mark(key);
  std::string prefix = full(key) + ".";
  // Everything below is marked through its prefix; see check_node.
  used_->insert(prefix + "*");
}

void Config::set_path(const std::string& dotted, const std::string& yaml_value) {
  BRAID_INPUT_CHECK(!dotted.empty(), "--set: empty key in '{}={}'", dotted, yaml_value);
  YAML::Node value;
  try {
    value = YAML::Load(yaml_value);
  } catch (const YAML::Exception&) {
    value = YAML::Node(yaml_value);
  }
  YAML::Node cur = node_;
  size_t start = 0;
  std::string walked;
  while (true) {
    size_t dot = dotted.find('.', start);
    std::string part = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    BRAID_INPUT_CHECK(!part.empty(), "--set: malformed key path '{}'", dotted);
    walked += (walked.empty() ? "" : ".") + part;
    if (dot == std::string::npos) {
      cur[part] = value;
      return;
    }
    YAML::Node next = cur[part];
    if (!next || next.IsNull()) {
      cur[part] = YAML::Node(YAML::NodeType::Map);
      next = cur[part];
    }
    BRAID_INPUT_CHECK(next.IsMap(), "--set {}: '{}' is not a map of keys", dotted, walked);
    cur.reset(next);
    start = dot + 1;
  }
}

void Config::check_node(const YAML::Node& n, const std::string& path) const {
  if (!n.IsMap()) return;
  for (auto it = n.begin(); it != n.end(); ++it) {
    BRAID_INPUT_CHECK(it->first.IsScalar(), "{}: a recipe key must be a plain name, got '{}'", origin_,
                      describe(it->first));
    std::string key = it->first.as<std::string>();
    std::string p = path.empty() ? key : path + "." + key;
    // a key is used when it, or a subtree above it, was read
    bool used = used_->count(p) > 0;
    for (size_t dot = p.rfind('.'); !used && dot != std::string::npos; dot = dot == 0 ? std::string::npos : p.rfind('.', dot - 1))
      used = used_->count(p.substr(0, dot) + ".*") > 0;
    BRAID_INPUT_CHECK(used, "{}: unknown recipe key '{}'", origin_, one_line(p));
    check_node(it->second, p);
  }
}

void Config::check_all_used() const { check_node(node_, path_); }

std::string Config::describe(const YAML::Node& n) {
  std::string s;
  if (n.IsScalar()) {
    s = n.Scalar();
  } else {
    YAML::Emitter e;
    e << YAML::Flow << n;
    s = e.c_str();
  }
  s = one_line(s);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

std::string Config::dump() const {
  YAML::Emitter e;
  e << node_;
  return std::string(e.c_str()) + "\n";
}

}  // namespace braid
