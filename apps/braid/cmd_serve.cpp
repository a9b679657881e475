// braid embed | index build | search | serve — embeddings of a run, the vector index, search and the server.
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/runtime.h"
#include "braid/nn/prepack.h"
#include "braid/serve/embedder.h"
#include "braid/serve/index.h"
#include "braid/serve/server.h"
#include "commands.h"
#include "report.h"

namespace braid::cli {

namespace {

// CPU fp32 runs embed through pre-packed oneDNN weights by default (nn/prepack.h, docs/results/engine.md)
constexpr const char* kNoPrepackHelp = "embed with the plain ATen Linear layers instead of pre-packed oneDNN weights";
constexpr const char* kPrecisionHelp = "fp32 (the run's own precision) or int8: the Linear layers through int8 oneDNN "
                                       "weights (CPUs with VNNI; docs/results/engine.md gives its accuracy)";

// How embed / search / serve run the model's Linear layers: --no-prepack and --precision, the same flags on each.
struct EmbedPath {
  bool no_prepack = false;
  std::string precision = "fp32";

  void add_to(CLI::App* c) {
    c->add_flag("--no-prepack", no_prepack, kNoPrepackHelp);
    c->add_option("--precision", precision, kPrecisionHelp)->capture_default_str()->check(CLI::IsMember({"fp32", "int8"}));
  }
  // Whether the Embedder packs in int8 (nn::resolve_int8: logs the path, false when forced off by
  // BRAID_CPU_INT8=0, refuses a CPU or build without it); int8 with --no-prepack is refused.
  bool int8(const char* who) const {
    if (precision != "int8") return false;
    BRAID_INPUT_CHECK(!no_prepack, "{}: --precision int8 runs through packed weights; drop --no-prepack", who);
    return nn::resolve_int8(who);
  }
};

struct EmbedArgs {
  std::string run, data, split, modality, out, weights = "model", text_view;
  std::vector<std::string> texts;  // --text: embed these and print them (no manifest)
  int threads = 0;
  EmbedPath path;  // --no-prepack, --precision
};
struct IndexArgs {
  std::string embeddings, out;
  serve::IndexSpec spec;
};
struct SearchArgs {
  std::string run, index, text, image, audio, weights = "model";
  int64_t k = 10;
  bool json = false;
  int threads = 0;
  EmbedPath path;  // --no-prepack, --precision
};
struct ServeArgs {
  std::string run, index, weights = "model";
  serve::ServerOptions opt;
  double max_body_mb = 8;
  int threads = 0;
  EmbedPath path;  // --no-prepack, --precision
};

void attach_report(ServeArgs& va) {  // the run's training report at /report (a run without metrics just has none)
  try {
    va.opt.report_html = report::render({report::load_run(va.run)}, false);
  } catch (const std::exception& e) {
    const std::string why = e.what();
    spdlog::warn("no report at /report: {}", why.substr(0, why.find('\n')));
  }
}

// Serve until SIGINT / SIGTERM.
void serve_until_stopped(serve::Server& server) {
  std::atomic<bool> done{false};
  std::thread watcher([&] {  // SIGINT / SIGTERM set braid's interrupt flag; stop the server then
    while (!done.load()) {
      if (interrupted()) {
        server.stop();
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  server.run();
  done = true;
  watcher.join();
}

// `braid serve RUN` without --index: a generative run's /api/generate and page only.
int serve_generator_only(ServeArgs& va) {
  std::unique_ptr<run::Generator> made;
  try {
    made = std::make_unique<run::Generator>(va.run, va.weights);
  } catch (const InputError& e) {  // not generative: it serves search, which needs an index
    input_error("{}: --index is required (only a generative run serves without one; make one with `braid embed` and "
                "`braid index build`): {}", va.run, e.what());
  }
  run::Generator& gen = *made;
  va.opt.generator = &gen;
  attach_report(va);
  serve::Server server(va.run, va.opt);
  const int port = server.bind();
  fmt::print("serving {} (no index; /api/generate{}) on http://{}:{}/  (Ctrl-C stops)\n", va.run,
             gen.draws() ? ", draws images" : "", va.opt.host, port);
  std::fflush(stdout);
  serve_until_stopped(server);
  fmt::print("stopped\n");
  return 0;
}

}  // namespace

void add_serve_commands(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto ea = std::make_shared<EmbedArgs>();
  auto* e = app.add_subcommand("embed", "embed one modality of a manifest split with a trained align run");
  e->add_option("run", ea->run, "run directory of a `task: align` run")->required();
  e->add_option("--data", ea->data, "manifest JSONL (with --modality and --out)");
  e->add_option("--split", ea->split, "split to embed (train, val, test; default: all samples)");
  e->add_option("--modality", ea->modality, "image, text or audio")
      ->check(CLI::IsMember({"image", "text", "audio"}));
  e->add_option("--out", ea->out, "output E.safetensors (vectors [N,D] + rows [N]); E.json sidecar with ids/paths");
  e->add_option("--text", ea->texts, "instead of a manifest: embed these texts (repeatable) and print one JSON line "
                                     "each, {\"text\", \"embedding\"}");
  e->add_option("--text-view", ea->text_view, "text view to embed (en, zh, ...; default: the recipe's)");
  e->add_option("--weights", ea->weights, "model (final), best, or a weights file path")->capture_default_str();
  e->add_option("--threads", ea->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  ea->path.add_to(e);
  out.emplace_back(e, [ea] {
    configure_threads(ea->threads);
    const bool int8 = ea->path.int8("braid embed");
    if (!ea->texts.empty()) {
      BRAID_INPUT_CHECK(ea->data.empty() && ea->out.empty(), "braid embed: --text prints the vectors; give either "
                        "--text or --data/--modality/--out");
      serve::Embedder emb(ea->run, ea->weights, !ea->path.no_prepack, int8);
      for (const auto& t : ea->texts) {
        auto v = emb.embed_query(serve::Query{"text", t, ""}).contiguous();
        std::vector<float> vals(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
        fmt::print("{}\n", nlohmann::json{{"text", t}, {"embedding", vals}}.dump());
      }
      return 0;
    }
    BRAID_INPUT_CHECK(!ea->data.empty() && !ea->modality.empty() && !ea->out.empty(),
                      "braid embed: --data, --modality and --out are required (or --text)");
    serve::Embedder emb(ea->run, ea->weights, !ea->path.no_prepack, int8);
    auto set = serve::embed_manifest(emb, ea->data, ea->split, ea->modality, ea->text_view);
    serve::save_embeddings(ea->out, set);
    fmt::print("wrote {} {} vectors of dim {} to {} (+ {})\n", set.vectors.size(0), ea->modality, set.vectors.size(1),
               ea->out, serve::sidecar_path(ea->out));
    return 0;
  });

  auto* idx = app.add_subcommand("index", "vector index (FAISS) over embeddings");
  idx->require_subcommand(1);
  auto ia = std::make_shared<IndexArgs>();
  auto* b = idx->add_subcommand("build", "build a FAISS index from `braid embed` output and save it to a directory");
  b->add_option("--embeddings", ia->embeddings, "E.safetensors written by `braid embed`")->required();
  b->add_option("--type", ia->spec.type, "flat (exact), ivf or hnsw")->capture_default_str()
      ->check(CLI::IsMember({"flat", "ivf", "hnsw"}));
  b->add_option("--nlist", ia->spec.nlist, "ivf: number of lists (0 = 4 sqrt(N))")->capture_default_str();
  b->add_option("--nprobe", ia->spec.nprobe, "ivf: lists visited per query")->capture_default_str();
  b->add_option("--m", ia->spec.m, "hnsw: neighbours per node")->capture_default_str();
  b->add_option("--ef-search", ia->spec.ef_search, "hnsw: search breadth")->capture_default_str();
  b->add_option("--out", ia->out, "index directory (index.faiss + meta.json)")->required();
  out.emplace_back(b, [ia] {
    auto set = serve::load_embeddings(ia->embeddings);
    auto ix = serve::VectorIndex::build(set, ia->spec);
    ix.save(ia->out);
    fmt::print("built {} index of {} {} vectors (dim {}) in {}\n", ia->spec.type, ix.size(), ix.modality(), ix.dim(),
               ia->out);
    return 0;
  });

  auto sa = std::make_shared<SearchArgs>();
  auto* s = app.add_subcommand("search", "search an index with a text, image or audio query");
  s->add_option("run", sa->run, "run directory (the model that embedded the index)")->required();
  s->add_option("--index", sa->index, "index directory from `braid index build`")->required();
  auto* qt = s->add_option("--text", sa->text, "text query");
  auto* qi = s->add_option("--image", sa->image, "image file query");
  auto* qa = s->add_option("--audio", sa->audio, "audio file query");
  qt->excludes(qi)->excludes(qa);
  qi->excludes(qa);
  s->add_option("--k", sa->k, "results")->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(10000)));
  s->add_option("--weights", sa->weights, "model (final), best, or a weights file path")->capture_default_str();
  s->add_option("--threads", sa->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  sa->path.add_to(s);
  s->add_flag("--json", sa->json, "print one JSON object as the last line of stdout");
  out.emplace_back(s, [sa, qt, qi, qa] {
    BRAID_INPUT_CHECK(qt->count() + qi->count() + qa->count() == 1, "search needs one of --text, --image or --audio");
    configure_threads(sa->threads);
    auto ix = serve::VectorIndex::load(sa->index);
    serve::Embedder emb(sa->run, sa->weights, !sa->path.no_prepack, sa->path.int8("braid search"));
    serve::Query q = qt->count() ? serve::Query{"text", sa->text, "--text"}
                     : qi->count() ? serve::query_from_file("image", sa->image)
                                   : serve::query_from_file("audio", sa->audio);
    auto v = emb.embed_query(q);
    BRAID_INPUT_CHECK(v.numel() == ix.dim(), "{}: index holds dim {} but the run embeds dim {} (another run?)",
                      sa->index, ix.dim(), v.numel());
    auto hits = ix.search(v, sa->k).at(0);
    nlohmann::json res = nlohmann::json::array();
    fmt::print("{:>4}  {:>7}  {:<24} {:<22} {}\n", "rank", "score", "id", "label", "path");
    int rank = 1;
    for (const auto& h : hits) {
      const auto& en = ix.entries()[static_cast<size_t>(h.slot)];
      fmt::print("{:>4}  {:>7.4f}  {:<24} {:<22} {}\n", rank, h.score, en.id, en.label, en.path);
      res.push_back({{"rank", rank++}, {"score", h.score}, {"id", en.id}, {"row", en.row}, {"path", en.path},
                     {"label", en.label}});
    }
    if (sa->json) fmt::print("{}\n", nlohmann::json{{"query", {{"modality", q.modality}, {"name", q.name}}},
                                                   {"results", res}}.dump());
    return 0;
  });

  auto va = std::make_shared<ServeArgs>();
  auto* v = app.add_subcommand("serve", "serve search over HTTP: JSON API and a web page");
  v->add_option("run", va->run, "run directory (the model that embedded the index)")->required();
  v->add_option("--index", va->index, "index directory from `braid index build` (a generative run may go without: "
                                      "then only /api/generate and the page's chat box / drawing form)");
  v->add_option("--host", va->opt.host, "address to bind (127.0.0.1 = this machine only)")->capture_default_str();
  v->add_option("--allow-host", va->opt.allow_hosts,
                 "Host header name the server answers (repeatable; '*' = any; default: localhost, 127.0.0.1, [::1] and --host)");
  v->add_option("--port", va->opt.port, "port (0 = any free port)")->capture_default_str()
      ->check(CLI::Range(0, 65535));
  v->add_option("--max-body-mb", va->max_body_mb, "largest request body in MB (larger: HTTP 413)")
      ->capture_default_str()->check(CLI::Range(0.001, 1024.0));
  v->add_option("--max-batch", va->opt.batch.max_batch, "largest batch of concurrent embed requests")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  v->add_option("--batch-wait-ms", va->opt.batch.wait_ms, "how long the batcher collects requests")
      ->capture_default_str()->check(CLI::Range(0.0, 1000.0));
  v->add_option("--http-threads", va->opt.http_threads, "request threads (0 = 2 x cores, at least 4)")
      ->capture_default_str();
  v->add_option("--threads", va->threads, "intra-op threads of the model forward (0 = all cores)")
      ->capture_default_str();
  va->path.add_to(v);
  v->add_option("--weights", va->weights, "model (final), best, or a weights file path")->capture_default_str();
  v->add_option("--max-connections", va->opt.max_connections, "connections served at once (more: HTTP 503)")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  v->add_option("--header-timeout", va->opt.header_timeout_s, "seconds for a request's line and headers (else 408)")
      ->capture_default_str()->check(CLI::Range(0.1, 3600.0));
  v->add_option("--request-timeout", va->opt.request_timeout_s,
                 "seconds for a whole request and its response, streamed answers included (else 408)")
      ->capture_default_str()->check(CLI::Range(0.1, 86400.0));
  v->add_option("--max-decodes", va->opt.max_decodes, "image/audio decodes at once")->capture_default_str()
      ->check(CLI::Range(1, 256));
  v->add_option("--max-generations", va->opt.max_generations,
                 "generative runs: answers and drawings computed at once, one core each (0 = the machine's cores; "
                 "more wait, then HTTP 503)")
      ->capture_default_str()->check(CLI::Range(0, 1024));
  v->add_option("--max-new-tokens", va->opt.max_new_tokens, "generative runs: the largest max_tokens of /api/generate")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  v->add_option("--max-draw", va->opt.max_draw, "drawing runs: the most images one /api/generate request may ask for")
      ->capture_default_str()->check(CLI::Range(1, 64));
  out.emplace_back(v, [va] {
    va->opt.max_body = static_cast<size_t>(va->max_body_mb * 1024 * 1024);
    va->opt.batch.threads = configure_threads(va->threads);
    if (va->index.empty()) return serve_generator_only(*va);
    auto ix = serve::VectorIndex::load(va->index);
    serve::Embedder emb(va->run, va->weights, !va->path.no_prepack, va->path.int8("braid serve"));
    {  // the run must embed into the index's space
      const auto& m = emb.embeds(ix.modality()) ? ix.modality() : emb.modalities().front();
      auto probe = serve::query_batch(m, {m == "text" ? torch::ones({1}, torch::kLong)
                                          : m == "image" ? torch::zeros({3, emb.preprocessor().options().image.size,
                                                                          emb.preprocessor().options().image.size})
                                                         : torch::zeros({emb.preprocessor().options().audio.n_mels, 8})});
      const auto d = emb.embed(m, probe.mods.at(m)).size(1);
      BRAID_INPUT_CHECK(d == ix.dim(), "{}: index holds dim {} but the run embeds dim {} (another run?)", va->index,
                        ix.dim(), d);
    }
    // a generative run also answers prompts: POST /api/generate and the page's chat box
    std::unique_ptr<run::Generator> gen;
    if (emb.pipeline().task == run::Task::Generate) {
      gen = std::make_unique<run::Generator>(va->run, va->weights);
      va->opt.generator = gen.get();
    }
    attach_report(*va);
    serve::Server server(emb, ix, va->opt);
    const int port = server.bind();
    fmt::print("serving {} ({} {} vectors, {} index{}) on http://{}:{}/  (Ctrl-C stops)\n", va->run, ix.size(),
               ix.modality(), ix.spec().type, gen ? "; /api/generate" : "", va->opt.host, port);
    std::fflush(stdout);
    serve_until_stopped(server);
    fmt::print("stopped after {} requests in {} batches\n", server.batcher().items(), server.batcher().batches());
    return 0;
  });
}

}  // namespace braid::cli
