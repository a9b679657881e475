// braid/core/config.h — YAML recipes with key paths, typed reads, defaults and unknown-key checks.
//
// A Config is a view of one YAML map inside a recipe, plus its dotted path ("model.encoders.image").
// Reads record which keys were used; after everything is built, `check_all_used()` rejects any key
// nobody read, naming its full path: a misspelt key is an error, never silently ignored.
// Defaults passed to `get` are written back into the tree, so `dump()` is the resolved recipe with
// every effective value. Copies share the same tree (YAML::Node reference semantics).
#pragma once

#include <yaml-cpp/yaml.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "braid/core/error.h"

namespace braid {

namespace detail {
template <typename T> const char* yaml_type_name();
}

class Config {
 public:
  Config();  // an empty map
  static Config from_file(const std::string& path);
  static Config from_string(const std::string& yaml, const std::string& origin = "<string>");

  // Child map at `key` (created empty when absent). InputError when `key` holds a non-map.
  Config at(const std::string& key) const;
  bool has(const std::string& key) const;
  std::vector<std::string> keys() const;

  // Typed read with a default; the default is stored back into the tree.
  template <typename T> T get(const std::string& key, const T& def) const {
    mark(key);
    YAML::Node n = node_[key];
    if (!n || n.IsNull()) {
      node_[key] = def;
      return def;
    }
    return convert<T>(n, key);
  }
  // Typed read of a key that must be present.
  template <typename T> T require(const std::string& key) const {
    mark(key);
    YAML::Node n = node_[key];
    BRAID_INPUT_CHECK(n && !n.IsNull(), "{}: recipe key '{}' is required ({})", origin_, full(key),
                      detail::yaml_type_name<T>());
    return convert<T>(n, key);
  }
  // Mark a key (and everything below it) as used without reading it.
  void mark_subtree(const std::string& key) const;

  // Set a value at a dotted path below this map, parsing `yaml_value` as YAML ("0.1", "[a, b]").
  void set_path(const std::string& dotted, const std::string& yaml_value);

  // InputError naming the first key below this map that was never read.
  void check_all_used() const;

  std::string dump() const;
  const std::string& path() const { return path_; }
  std::string full(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const std::string& origin() const { return origin_; }
  YAML::Node node() const { return node_; }

 private:
  Config(YAML::Node node, std::string path, std::string origin, std::shared_ptr<std::set<std::string>> used);
  void mark(const std::string& key) const;
  template <typename T> T convert(const YAML::Node& n, const std::string& key) const {
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      input_error("{}: recipe key '{}': expected {}, got '{}'", origin_, full(key), detail::yaml_type_name<T>(),
                  describe(n));
    }
  }
  static std::string describe(const YAML::Node& n);
  void check_node(const YAML::Node& n, const std::string& path) const;

  mutable YAML::Node node_;
  std::string path_;
  std::string origin_;
  std::shared_ptr<std::set<std::string>> used_;
};

}  // namespace braid
