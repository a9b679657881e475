// braid list [KIND] — every name a recipe or a command may use, with its doc line.
#include <fmt/format.h>

#include <functional>
#include <utility>

#include "braid/core/error.h"
#include "braid/data/build/build.h"
#include "braid/eval/tasks.h"
#include "braid/models/dual_tower.h"
#include "braid/models/model.h"
#include "braid/nn/encoder.h"
#include "braid/nn/fusion.h"
#include "braid/nn/sequence.h"
#include "braid/objectives/supervised.h"
#include "commands.h"

namespace braid::cli {

namespace {

using Rows = std::vector<std::pair<std::string, std::string>>;

template <typename R>
Rows registry_rows(const R& r) {
  Rows out;
  for (const auto& n : r.names()) out.emplace_back(n, r.doc(n));
  return out;
}

struct Kind {
  const char* name;
  const char* where;  // where a user names one
  std::function<Rows()> rows;
};

const std::vector<Kind>& kinds() {
  static const std::vector<Kind> k = {
      {"models", "recipe `model.name`", [] { return registry_rows(models::model_registry()); }},
      {"encoders", "recipe `model.encoders.<modality>.name`", [] { return registry_rows(nn::encoder_registry()); }},
      {"sequences", "recipe `model.sequences.<modality>.name` (temporal models: mult, mfn, mctn, unicode)",
       [] { return registry_rows(nn::sequence_registry()); }},
      {"fusions", "recipe `model.fusion.name` (fusion_classifier)", [] { return registry_rows(nn::fusion_registry()); }},
      {"losses", "recipe `train.loss` (classify/regress) and `model.loss` (dual_tower, a name or a list)",
       [] {
         Rows out;
         for (const auto& [n, l] : objectives::supervised_losses()) out.emplace_back("train.loss: " + n, l.doc);
         for (const auto& [n, l] : models::DualTowerImpl::losses()) out.emplace_back("model.loss: " + n, l.doc);
         return out;
       }},
      {"datasets", "`braid data build NAME --out DIR`", [] { return registry_rows(data::dataset_registry()); }},
      {"tasks", "`braid eval RUN --task NAME`", [] { return registry_rows(eval::task_registry()); }},
  };
  return k;
}

std::vector<std::string> kind_names() {
  std::vector<std::string> out;
  for (const auto& k : kinds()) out.push_back(k.name);
  return out;
}

}  // namespace

void add_list_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto kind = std::make_shared<std::string>();
  auto* l = app.add_subcommand("list", "list what recipes and commands may name, with a doc line each: " +
                                           fmt::format("{}", fmt::join(kind_names(), ", ")));
  l->add_option("kind", *kind, "one kind (default: all)");
  out.emplace_back(l, [kind] {
    bool found = false;
    for (const auto& k : kinds()) {
      if (!kind->empty() && *kind != k.name) continue;
      found = true;
      auto rows = k.rows();
      size_t w = 0;
      for (const auto& r : rows) w = std::max(w, r.first.size());
      fmt::print("{}: {}\n", k.name, k.where);
      for (const auto& [n, doc] : rows) fmt::print("  {:<{}}  {}\n", n, w, doc);
      fmt::print("\n");
    }
    BRAID_INPUT_CHECK(found, "list: unknown kind '{}' (known: {})", *kind, fmt::join(kind_names(), ", "));
    return 0;
  });
}

}  // namespace braid::cli
