// braid/serve/server.cpp — HTTP routes, request parsing and error mapping of `braid serve`.
#include "braid/serve/server.h"

#include <ATen/Parallel.h>
#include <httplib.h>
#include <omp.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "braid/core/error.h"

namespace braid::serve {

using nlohmann::json;

namespace {

// Invalid UTF-8 in an echoed string (a file name, a text query) is replaced by U+FFFD, never a 500.
void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

// A count parameter: decimal digits only (no sign, exponent, fraction or trailing text), at most 9 digits.
int64_t parse_count(const std::string& s, const char* what) {
  BRAID_INPUT_CHECK(!s.empty() && s.size() <= 9 && std::all_of(s.begin(), s.end(), [](unsigned char c) {
                      return c >= '0' && c <= '9';
                    }),
                    "{} must be a positive integer, got '{}'", what, s.substr(0, 32));
  return std::stoll(s);
}

void send_error(httplib::Response& res, int status, const std::string& msg) {
  send_json(res, status, {{"error", msg}});
}

// Request threads preprocess with one intra-op thread each: the forward (batcher) uses the cores.
void single_threaded_worker() {
  thread_local bool done = false;
  if (done) return;
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(1);
  done = true;
}

std::string content_type_of(const std::string& path) {
  auto dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? "" : path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == "png") return "image/png";
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "bmp") return "image/bmp";
  if (ext == "wav") return "audio/wav";
  if (ext == "flac") return "audio/flac";
  if (ext == "ogg") return "audio/ogg";
  return "application/octet-stream";
}

// The host part of a Host or Origin value: "[::1]:8080" -> "[::1]", "http://a.b:80" -> "a.b".
std::string host_of(std::string v) {
  auto scheme = v.find("://");
  if (scheme != std::string::npos) v = v.substr(scheme + 3);
  if (!v.empty() && v[0] == '[') {
    auto close = v.find(']');
    return close == std::string::npos ? v : v.substr(0, close + 1);
  }
  auto colon = v.find(':');
  if (colon != std::string::npos) v = v.substr(0, colon);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v;
}

}  // namespace

struct Server::Impl {
  Embedder& e;
  const VectorIndex& index;
  ServerOptions opt;
  Batcher batcher;
  httplib::Server http;
  int port = -1;

  Impl(Embedder& em, const VectorIndex& ix, const ServerOptions& o) : e(em), index(ix), opt(o), batcher(em, o.batch) {}

  // The query of a request: JSON {"text": ...} (or {"modality": "text", ...}), or a multipart upload
  // with a file field "image" / "audio" (or "file" + a "modality" field), or a "text" field.
  Query parse_query(const httplib::Request& req, int64_t* k) {
    Query q;
    if (req.is_multipart_form_data()) {
      for (const char* f : {"image", "audio"}) {
        if (req.has_file(f)) {
          auto file = req.get_file_value(f);
          q = {f, file.content, file.filename.empty() ? std::string("upload") : file.filename};
          break;
        }
      }
      if (q.modality.empty() && req.has_file("file")) {
        auto file = req.get_file_value("file");
        std::string mod = req.has_file("modality") ? req.get_file_value("modality").content : "";
        BRAID_INPUT_CHECK(!mod.empty(), "multipart field 'file' needs a 'modality' field (image or audio)");
        q = {mod, file.content, file.filename.empty() ? std::string("upload") : file.filename};
      }
      if (q.modality.empty() && req.has_file("text")) q = {"text", req.get_file_value("text").content, "text query"};
      BRAID_INPUT_CHECK(!q.modality.empty(), "multipart upload needs a field 'image', 'audio' or 'text'");
      if (req.has_file("k")) *k = parse_count(req.get_file_value("k").content, "field 'k'");
    } else {
      json j;
      try {
        j = json::parse(req.body);
      } catch (const json::exception&) {
        input_error("request body is not JSON; expected {{\"text\": \"...\"}} or a multipart upload (image, audio)");
      }
      BRAID_INPUT_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(),
                        "expected a JSON object with a string field 'text' (or a multipart upload for image/audio)");
      q = {"text", j["text"].get<std::string>(), "text query"};
      if (j.contains("k")) {
        BRAID_INPUT_CHECK(j["k"].is_number_integer(), "field 'k' must be an integer");
        *k = j["k"].get<int64_t>();
      }
    }
    if (req.has_param("k")) *k = parse_count(req.get_param_value("k"), "parameter 'k'");
    BRAID_INPUT_CHECK(*k >= 1 && *k <= opt.max_k, "k = {}: expected 1..{}", *k, opt.max_k);
    BRAID_INPUT_CHECK(e.embeds(q.modality), "this run does not embed '{}' (it embeds {})", q.modality,
                      fmt::format("{}", fmt::join(e.modalities(), ", ")));
    return q;
  }

  torch::Tensor embed(const Query& q) {
    single_threaded_worker();
    auto x = preprocess_query(e.preprocessor(), q);
    return batcher.embed(q.modality, x);
  }

  // Run a handler, mapping InputError to 400 and anything else to 500.
  template <typename F>
  void guarded(httplib::Response& res, F&& f) {
    try {
      f();
    } catch (const InputError& ex) {
      send_error(res, 400, ex.what());
    } catch (const std::exception& ex) {
      send_error(res, 500, std::string("internal error: ") + ex.what());
    }
  }

  // Cross-site protection, before routing (see server.h). Returns true when the request was refused.
  bool refuse(const httplib::Request& req, httplib::Response& res) const {
    const std::string host = host_of(req.get_header_value("Host"));
    auto& allow = opt.allow_hosts;
    const bool any = std::find(allow.begin(), allow.end(), "*") != allow.end();
    // no Host at all (HTTP/1.0 tools) cannot come from a browser; a foreign one may (DNS rebinding)
    if (!any && !host.empty() && std::find(allow.begin(), allow.end(), host) == allow.end()) {
      send_error(res, 403, "host '" + host + "' is not served here (braid serve --allow-host NAME)");
      return true;
    }
    if (req.method != "POST") return false;
    const std::string type = req.get_header_value("Content-Type");
    if (req.is_multipart_form_data()) {
      const std::string origin = req.get_header_value("Origin");
      if (!origin.empty() && host_of(origin) != host) {
        send_error(res, 403, "cross-origin upload refused");
        return true;
      }
      return false;
    }
    if (type.rfind("application/json", 0) != 0) {
      send_error(res, 415, "expected Content-Type: application/json (or a multipart upload)");
      return true;
    }
    return false;
  }

  void routes() {
    if (opt.allow_hosts.empty()) opt.allow_hosts = {"localhost", "127.0.0.1", "[::1]", host_of(opt.host)};
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      return refuse(req, res) ? httplib::Server::HandlerResponse::Handled : httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_payload_max_length(opt.max_body);
    const int threads = opt.http_threads > 0 ? opt.http_threads
                                             : std::max(4, 2 * static_cast<int>(std::thread::hardware_concurrency()));
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http.set_read_timeout(10, 0);
    http.set_write_timeout(10, 0);

    http.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(index_html(), "text/html; charset=utf-8");
    });
    http.Get(R"(/static/([A-Za-z0-9_.-]+))", [](const httplib::Request& req, httplib::Response& res) {
      std::string type;
      const std::string* a = static_asset(req.matches[1], &type);
      if (!a) return send_error(res, 404, "no such asset");
      res.set_content(*a, type.c_str());
    });
    http.Get("/api/health", [this](const httplib::Request&, httplib::Response& res) {
      send_json(res, 200, {{"status", "ok"},
                           {"run", e.run()},
                           {"index", index.describe()},
                           {"modalities", e.modalities()},
                           {"batches", batcher.batches()},
                           {"requests", batcher.items()}});
    });
    http.Post("/api/embed", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        int64_t k = 1;
        auto q = parse_query(req, &k);
        auto v = embed(q);
        std::vector<float> vec(v.data_ptr<float>(), v.data_ptr<float>() + v.numel());
        send_json(res, 200, {{"modality", q.modality}, {"dim", v.numel()}, {"vector", vec}});
      });
    });
    http.Post("/api/search", [this](const httplib::Request& req, httplib::Response& res) {
      guarded(res, [&] {
        const auto t0 = std::chrono::steady_clock::now();
        int64_t k = opt.default_k;
        auto q = parse_query(req, &k);
        auto v = embed(q);
        auto hits = index.search(v, k);
        json results = json::array();
        int rank = 1;
        for (const auto& h : hits.at(0)) {
          const auto& en = index.entries()[static_cast<size_t>(h.slot)];
          results.push_back({{"rank", rank++},
                             {"slot", h.slot},
                             {"score", h.score},
                             {"id", en.id},
                             {"row", en.row},
                             {"path", en.path},
                             {"label", en.label},
                             {"url", en.path.empty() ? "" : "/media/" + std::to_string(h.slot)}});
        }
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        json query = {{"modality", q.modality}, {"name", q.name}};
        if (q.modality == "text") query["text"] = text_prefix(q.payload, e.preprocessor().options().text.max_tokens);
        send_json(res, 200, {{"query", query},
                             {"k", k},
                             {"index", index.describe()},
                             {"took_ms", ms},
                             {"results", results}});
      });
    });
    // Only files the index references, addressed by slot number: no client path reaches the file system.
    http.Get(R"(/media/(\d{1,12}))", [this](const httplib::Request& req, httplib::Response& res) {
      const long long slot = std::stoll(req.matches[1]);
      if (slot < 0 || slot >= index.size()) return send_error(res, 404, "no such index entry");
      const std::string& path = index.entries()[static_cast<size_t>(slot)].path;
      if (path.empty()) return send_error(res, 404, "index entry has no file");
      std::ifstream f(path, std::ios::binary);
      if (!f.good()) return send_error(res, 404, "file of index entry is missing");
      std::string bytes((std::istreambuf_iterator<char>(f)), {});
      res.set_header("Cache-Control", "max-age=3600");
      res.set_content(bytes, content_type_of(path).c_str());
    });
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404) send_error(res, 404, "no route " + req.method + " " + req.path);
      else if (res.status == 413) send_error(res, 413, "request body over the size limit");
      else send_error(res, res.status, "HTTP error " + std::to_string(res.status));
    });
  }
};

Server::Server(Embedder& e, const VectorIndex& index, ServerOptions opt)
    : opt_(std::move(opt)), impl_(std::make_unique<Impl>(e, index, opt_)) {
  BRAID_INPUT_CHECK(index.dim() > 0, "index is empty");
  impl_->routes();
}

Server::~Server() {
  stop();
  impl_->batcher.stop();
}

int Server::bind() {
  auto& h = impl_->http;
  if (opt_.port == 0) {
    impl_->port = h.bind_to_any_port(opt_.host);
  } else {
    impl_->port = h.bind_to_port(opt_.host, opt_.port) ? opt_.port : -1;
  }
  BRAID_INPUT_CHECK(impl_->port > 0, "cannot listen on {}:{} (address in use or not available)", opt_.host, opt_.port);
  return impl_->port;
}

void Server::run() {
  if (impl_->port <= 0) bind();
  impl_->http.listen_after_bind();
}

void Server::stop() {
  if (impl_) impl_->http.stop();
}

const Batcher& Server::batcher() const { return impl_->batcher; }

}  // namespace braid::serve
