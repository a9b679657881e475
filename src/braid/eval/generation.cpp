#include "braid/eval/generation.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/run/chat.h"

namespace braid::eval {

namespace {

std::string normalize(const std::string& s) {
  std::string t;
  for (unsigned char c : s) t.push_back(c < 0x80 ? static_cast<char>(std::tolower(c)) : static_cast<char>(c));
  const auto a = t.find_first_not_of(" \t\n\r"), b = t.find_last_not_of(" \t\n\r");
  return a == std::string::npos ? "" : t.substr(a, b - a + 1);
}

// UTF-8 code points of s as strings.
std::vector<std::string> chars(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    n = std::min(n, s.size() - i);
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

bool is_cjk(const std::string& ch) {
  if (ch.size() != 3) return false;
  const unsigned char a = ch[0];
  return a >= 0xE3 && a <= 0xE9;  // U+3000..U+9FFF: CJK symbols, kana, unified ideographs
}

std::map<std::vector<std::string>, int64_t> ngrams(const std::vector<std::string>& t, size_t n) {
  std::map<std::vector<std::string>, int64_t> m;
  for (size_t i = 0; i + n <= t.size(); ++i) ++m[std::vector<std::string>(t.begin() + i, t.begin() + i + n)];
  return m;
}

int64_t overlap(const std::map<std::vector<std::string>, int64_t>& h, const std::map<std::vector<std::string>, int64_t>& r) {
  int64_t n = 0;
  for (const auto& [g, c] : h) {
    auto it = r.find(g);
    if (it != r.end()) n += std::min(c, it->second);
  }
  return n;
}

// The rows `rows` of a batch (every modality, labels).
Batch select_rows(const Batch& b, const std::vector<int64_t>& rows) {
  Batch o;
  auto idx = torch::tensor(rows, torch::kLong);
  for (auto r : rows) o.index.push_back(b.index[r]);
  for (const auto& [m, mb] : b.mods) {
    auto i = idx.to(mb.data.device());
    ModalityBatch s;
    s.data = mb.data.index_select(0, i);
    if (mb.lengths.defined()) s.lengths = mb.lengths.index_select(0, i.to(mb.lengths.device()));
    if (mb.present.defined()) s.present = mb.present.index_select(0, i.to(mb.present.device()));
    o.mods[m] = s;
  }
  if (b.labels.defined()) o.labels = b.labels.index_select(0, idx.to(b.labels.device()));
  return o;
}

}  // namespace

std::vector<std::string> text_tokens(const std::string& s) {
  std::vector<std::string> out;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) out.push_back(word), word.clear();
  };
  for (const auto& ch : chars(normalize(s))) {
    if (ch == " " || ch == "\t" || ch == "\n") {
      flush();
    } else if (is_cjk(ch)) {
      flush();
      out.push_back(ch);
    } else {
      word += ch;
    }
  }
  flush();
  return out;
}

double token_f1(const std::string& hyp, const std::string& ref) {
  auto h = text_tokens(hyp), r = text_tokens(ref);
  if (h.empty() || r.empty()) return h.empty() && r.empty() ? 1.0 : 0.0;
  const double common = static_cast<double>(overlap(ngrams(h, 1), ngrams(r, 1)));
  if (common == 0) return 0.0;
  const double p = common / h.size(), q = common / r.size();
  return 2 * p * q / (p + q);
}

double corpus_bleu4(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  BRAID_INPUT_CHECK(hyps.size() == refs.size(), "bleu: {} hypotheses for {} references", hyps.size(), refs.size());
  int64_t match[4] = {0, 0, 0, 0}, total[4] = {0, 0, 0, 0}, hyp_len = 0, ref_len = 0;
  for (size_t i = 0; i < hyps.size(); ++i) {
    auto h = text_tokens(hyps[i]), r = text_tokens(refs[i]);
    hyp_len += static_cast<int64_t>(h.size());
    ref_len += static_cast<int64_t>(r.size());
    for (size_t n = 1; n <= 4; ++n) {
      auto hg = ngrams(h, n);
      match[n - 1] += overlap(hg, ngrams(r, n));
      total[n - 1] += h.size() >= n ? static_cast<int64_t>(h.size() - n + 1) : 0;
    }
  }
  double log_sum = 0;
  for (int n = 0; n < 4; ++n) {
    if (match[n] == 0 || total[n] == 0) return 0.0;
    log_sum += std::log(static_cast<double>(match[n]) / total[n]);
  }
  const double bp = hyp_len >= ref_len ? 1.0 : std::exp(1.0 - static_cast<double>(ref_len) / std::max<int64_t>(1, hyp_len));
  return bp * std::exp(log_sum / 4);
}

double sentence_chrf(const std::string& hyp, const std::string& ref) {
  auto strip = [](const std::string& s) {
    std::vector<std::string> c;
    for (const auto& ch : chars(normalize(s)))
      if (ch != " ") c.push_back(ch);
    return c;
  };
  auto h = strip(hyp), r = strip(ref);
  if (h.empty() || r.empty()) return h.empty() && r.empty() ? 1.0 : 0.0;
  double p_sum = 0, r_sum = 0;
  int orders = 0;
  for (size_t n = 1; n <= 6; ++n) {
    if (h.size() < n || r.size() < n) break;
    auto hg = ngrams(h, n), rg = ngrams(r, n);
    const double m = static_cast<double>(overlap(hg, rg));
    p_sum += m / static_cast<double>(h.size() - n + 1);
    r_sum += m / static_cast<double>(r.size() - n + 1);
    ++orders;
  }
  const double p = p_sum / orders, q = r_sum / orders, b2 = 4.0;
  return p + q == 0 ? 0.0 : (1 + b2) * p * q / (b2 * p + q);
}

nlohmann::json score_texts(const std::vector<std::string>& hyps, const std::vector<std::string>& refs) {
  BRAID_INPUT_CHECK(hyps.size() == refs.size(), "score: {} hypotheses for {} references", hyps.size(), refs.size());
  double exact = 0, f1 = 0, chrf = 0;
  for (size_t i = 0; i < hyps.size(); ++i) {
    exact += normalize(hyps[i]) == normalize(refs[i]) ? 1.0 : 0.0;
    f1 += token_f1(hyps[i], refs[i]);
    chrf += sentence_chrf(hyps[i], refs[i]);
  }
  const double n = std::max<double>(1.0, static_cast<double>(hyps.size()));
  return {{"n", hyps.size()}, {"exact", exact / n}, {"f1", f1 / n}, {"bleu4", corpus_bleu4(hyps, refs)},
          {"chrf", chrf / n}};
}

nlohmann::json evaluate_generation(Pipeline& p, data::Loader& loader, const GenerationOptions& o,
                                   const std::string& label) {
  BRAID_INPUT_CHECK(p.task == Task::Generate && p.tokenizer,
                    "generation metrics need a run trained with task: generate");
  const auto spec = run::chat_spec(*p.tokenizer, p.recipe.at("model"));
  std::vector<nn::lm::ChatTask> tasks;  // generated and scored
  std::vector<std::string> selected;   // also text-only tasks: teacher-forced NLL only
  for (const auto& t : spec.tasks) {
    bool want = o.tasks.empty();
    for (const auto& w : o.tasks)
      want = want || w == t.name || (w == "caption" && t.answer == "text") || (w == "qa" && t.answer == "label");
    if (!want) continue;
    selected.push_back(t.name);
    if (!t.modality.empty()) tasks.push_back(t);
  }
  BRAID_INPUT_CHECK(!selected.empty(), "no task of this run matches '{}'", fmt::join(o.tasks, ","));
  const auto& samples = loader.manifest().samples();
  const std::string view = p.pre->options().text.view;
  auto reference = [&](const data::SampleRecord& s, const nn::lm::ChatTask& t) -> std::optional<std::string> {
    if (t.answer == "label") return s.label;
    const std::string* v = s.text_view(view == "random" ? "" : view);
    return v ? std::optional<std::string>(*v) : std::nullopt;
  };

  torch::NoGradGuard ng;
  const bool was_training = p.model->is_training();
  p.model->eval();
  // nearest neighbour: the train sample closest by the model's encoder embedding answers for the query
  Embeddings train_emb;
  std::shared_ptr<const data::Manifest> train_m = o.train_manifest;
  if (o.baselines) {
    BRAID_INPUT_CHECK(train_m, "generation baselines need the train manifest");
    auto tl = p.loader(train_m, p.recipe.at("data").get<std::string>("train_split", "train"), false);
    train_emb = embed_all(p, *tl, "embed train");
  }

  std::map<std::string, std::vector<std::string>> hyps, refs, near;
  std::map<std::string, double> nll_sum;  // teacher-forced answer NLL per task, weighted by batch rows
  std::map<std::string, int64_t> nll_n;
  nlohmann::json examples = nlohmann::json::array();
  for_each_batch(p, loader, label, [&](const Batch& host, const Batch& batch) {
    const Batch* b = &host;
    {
      AutocastScope ac(p.device.type(), p.precision);
      p.model->objective(batch);
      for (const auto& [name, v] : p.model->loss_terms()) {
        nll_sum[name] += v * static_cast<double>(b->size());
        nll_n[name] += b->size();
      }
    }
    for (const auto& t : tasks) {
      auto it = b->mods.find(t.modality);
      if (it == b->mods.end()) continue;
      std::vector<int64_t> rows;
      std::vector<std::string> row_refs;
      auto present = it->second.present.to(torch::kCPU);
      for (int64_t r = 0; r < b->size(); ++r) {
        if (!present[r].item<bool>()) continue;
        auto ref = reference(samples[b->index[r]], t);
        if (!ref) continue;
        rows.push_back(r);
        row_refs.push_back(*ref);
      }
      if (rows.empty()) continue;
      auto sub = select_rows(batch, rows);
      models::ModelImpl::GenerateRequest req;
      req.modality = t.modality;
      req.prompt_ids = t.prompt_ids;
      req.options.max_tokens = o.max_tokens;
      req.options.use_cache = o.use_cache;
      AutocastScope ac(p.device.type(), p.precision);
      auto g = p.model->generate(sub, req);
      auto acc = g.tokens.accessor<int64_t, 2>();
      for (size_t i = 0; i < rows.size(); ++i) {
        std::vector<int64_t> ids(acc[i].data(), acc[i].data() + acc.size(1));
        ids.resize(static_cast<size_t>(g.lengths[i]));
        std::string text = run::decode_answer(*p.tokenizer, ids, spec.eos);
        // examples spread over the split (every stride-th answer of each task), not its first rows
        const int64_t stride = std::max<int64_t>(1, loader.samples() * static_cast<int64_t>(tasks.size()) /
                                                        std::max<int64_t>(1, o.examples));
        if (static_cast<int64_t>(examples.size()) < o.examples &&
            static_cast<int64_t>(hyps[t.name].size()) % stride == 0)
          examples.push_back({{"id", samples[b->index[rows[i]]].id}, {"task", t.name}, {"reference", row_refs[i]},
                              {"generated", text}});
        hyps[t.name].push_back(std::move(text));
        refs[t.name].push_back(row_refs[i]);
      }
      if (o.baselines) {
        auto q = p.model->embed(t.modality, sub.mods.at(t.modality)).to(torch::kCPU, torch::kFloat);
        auto nn_idx = torch::matmul(q, train_emb.vectors.at(t.modality).t()).argmax(1);
        for (int64_t i = 0; i < nn_idx.size(0); ++i) {
          const int64_t j = train_emb.index.at(t.modality)[nn_idx[i].item<int64_t>()].item<int64_t>();
          near[t.name].push_back(reference(train_m->samples()[j], t).value_or(""));
        }
      }
    }
  });

  nlohmann::json out = {{"tasks", nlohmann::json::object()}};
  double score = 0, nll_all = 0;
  int64_t scored = 0, with_nll = 0;
  for (const auto& name : selected) {
    if (!nll_n[name]) continue;
    const double nll = nll_sum[name] / static_cast<double>(nll_n[name]);
    out["tasks"][name] = {{"nll", nll}, {"perplexity", std::exp(nll)}};
    nll_all += nll;
    ++with_nll;
  }
  for (const auto& t : tasks) {
    if (!hyps.count(t.name)) continue;
    auto s = score_texts(hyps[t.name], refs[t.name]);
    if (out["tasks"].contains(t.name)) s.update(out["tasks"][t.name]);
    s["prompt"] = t.prompt;
    s["modality"] = t.modality;
    s["answer"] = t.answer;
    if (t.answer == "label") s["accuracy"] = s["exact"];
    if (o.baselines) {
      s["nearest"] = score_texts(near[t.name], refs[t.name]);
      // the prior: the same prompt without the input (one answer for every sample)
      Batch none;
      none.index = {0};
      models::ModelImpl::GenerateRequest req;
      req.prompt_ids = t.prompt_ids;
      req.options.max_tokens = o.max_tokens;
      auto g = p.model->generate(none, req);
      std::vector<int64_t> ids(g.tokens.data_ptr<int64_t>(), g.tokens.data_ptr<int64_t>() + g.lengths[0]);
      const std::string prior = run::decode_answer(*p.tokenizer, ids, spec.eos);
      s["prior"] = score_texts(std::vector<std::string>(refs[t.name].size(), prior), refs[t.name]);
      s["prior"]["text"] = prior;
    }
    score += t.answer == "label" ? s.value("accuracy", 0.0) : s.value("f1", 0.0);
    ++scored;
    out["tasks"][t.name] = s;
  }
  // checkpoint selection: the mean answer F1 / accuracy; a text-only run: 1 / perplexity
  out["score"] = scored ? score / static_cast<double>(scored)
                        : (with_nll ? std::exp(-nll_all / static_cast<double>(with_nll)) : 0.0);
  if (o.examples > 0) out["examples"] = examples;
  p.model->train(was_training);
  return out;
}

}  // namespace braid::eval
