// braid/core/registry.h — name -> factory tables that recipes use to build components.
//
// Each kind of component (encoder, fusion, head, model, ...) has one Registry, filled in one
// place by its layer. `make` reads the `name` key of a recipe map and calls the factory with
// that map; an unknown name is an InputError that lists the known names.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "braid/core/config.h"
#include "braid/core/error.h"

namespace braid {

template <typename Product, typename... Args>
class Registry {
 public:
  using Factory = std::function<Product(const Config&, Args...)>;

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  Registry& add(const std::string& name, std::string doc, Factory f) {
    entries_[name] = Entry{std::move(doc), std::move(f)};
    return *this;
  }

  bool contains(const std::string& name) const { return entries_.count(name) > 0; }

  // Build from a recipe map whose `name` key picks the factory.
  Product make(const Config& cfg, Args... args) const {
    auto name = cfg.require<std::string>("name");
    return make_named(name, cfg, std::forward<Args>(args)...);
  }

  Product make_named(const std::string& name, const Config& cfg, Args... args) const {
    auto it = entries_.find(name);
    if (it == entries_.end())
      input_error("{}: unknown {} '{}' at '{}' (known: {})", cfg.origin(), kind_, name, cfg.full("name"),
                  fmt::join(names(), ", "));
    return it->second.factory(cfg, std::forward<Args>(args)...);
  }

  // Build by a name given outside a recipe (a CLI argument): `where` names it in the error.
  Product make_by_name(const std::string& name, const std::string& where, Args... args) const {
    auto it = entries_.find(name);
    if (it == entries_.end())
      input_error("{}: unknown {} '{}' (known: {})", where, kind_, name, fmt::join(names(), ", "));
    return it->second.factory(Config(), std::forward<Args>(args)...);
  }

  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& kv : entries_) out.push_back(kv.first);
    return out;
  }
  const std::string& doc(const std::string& name) const { return entries_.at(name).doc; }
  const std::string& kind() const { return kind_; }

 private:
  struct Entry {
    std::string doc;
    Factory factory;
  };
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace braid
