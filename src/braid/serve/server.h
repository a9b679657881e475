// braid/serve/server.h — `braid serve`: the JSON API and the search web page over HTTP (cpp-httplib).
//
//   GET  /                 the search page (query box, upload field, result images with scores;
//                          `/?q=red+heart` searches on load)
//   GET  /api/health       {"status": "ok", run, index, modalities, searches, generates, draws, ...}
//   POST /api/embed        JSON {"text": "..."} or multipart upload (field image | audio) -> {modality, dim, vector}
//   POST /api/search       the same inputs (+ "k") -> {results: [{rank, score, id, row, path, label, url}]}
//   GET  /media/<slot>     the file of index entry <slot> (only files the index references)
//   POST /api/generate     generative runs (ServerOptions::generator): JSON {"prompt", "task", "max_tokens",
//                          "temperature", "top_k", "top_p", "seed"} or the same as multipart fields with a file
//                          field image | audio -> server-sent events: "data: {"text": piece}" per step, then
//                          "event: done" with {"text", "task", "prompt", "tokens", "stopped"}
//                          drawing runs (Generator::draws()): JSON {"text", "n", "guidance", "seed", "temperature",
//                          "top_k", "top_p"} -> JSON {"images": ["data:image/png;base64,..."], "width", "height",
//                          "seconds", ...}; a multipart upload 'image' is named as above
//   GET  /static/<name>    assets compiled into the binary
//   GET  /report           the served run's `braid report` page (made when the server starts)
// A generative run may be served without an index (Server(run, opt)): then /api/embed, /api/search and
// /media answer 404 and the page shows only the chat box / drawing form.
// Errors are JSON {"error": "..."}: 400 bad input, 404 unknown route, 408 request too slow, 413 body
// over the limit (chunked bodies too), 415 compressed body, 431 headers over the limit, 503 busy.
// Every connection runs under limits of its own (ServerOptions below; docs/serve.md "Security").
// Cross-site requests are refused before any work: a Host header outside `allow_hosts` (DNS
// rebinding) gets 403; a POST must be JSON with `Content-Type: application/json` (415 otherwise: a
// plain-text form post from another site is not a query) or a multipart upload whose Origin, when
// present, is this server's own (403 otherwise).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "braid/run/generator.h"
#include "braid/serve/batcher.h"
#include "braid/serve/embedder.h"
#include "braid/serve/index.h"

namespace braid::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                  // 0 = any free port
  size_t max_body = 8u << 20;       // bytes; larger requests get 413
  int http_threads = 0;             // request threads started up front (0 = 2 x cores, at least 4); more start
                                    // on demand, up to max_connections
  BatcherOptions batch;
  int64_t default_k = 10, max_k = 100;
  // Host header names (without port) the server answers; "*" = any. Empty = localhost, 127.0.0.1,
  // [::1] and `host` itself.
  std::vector<std::string> allow_hosts;
  // Connection limits (a slow or hostile client holds one thread for at most these).
  size_t max_header_bytes = 64u << 10;  // request line + headers; more -> 431
  int max_headers = 100;                // header lines; more -> 431
  double header_timeout_s = 10;         // request line + headers must arrive within this -> 408
  double request_timeout_s = 60;        // whole request (headers, body) and its response within this -> 408
  double io_timeout_s = 10;             // a single read or write without progress for this long ends the connection
  double idle_timeout_s = 5;            // keep-alive connection idle this long is closed
  int max_connections = 64;             // connections served at once (threads start on demand); more -> 503
  size_t max_body_total = 256u << 20;   // bytes of request bodies in flight over all connections; more -> 503
  int max_decodes = 2;                  // image/audio decodes at once (each up to ~1 GB at the pixel limit)
  double decode_wait_s = 30;            // a request waiting longer for a decode slot -> 503
  int max_generations = 0;              // /api/generate answers and drawings computed at once, one core each
                                        // (0 = the machine's cores): the server never runs more than it has
  double generate_wait_s = 30;          // a request waiting longer for a generation slot -> 503
  double drain_s = 10;                  // stop(): in-flight requests get this long to finish
  run::Generator* generator = nullptr;  // a generative run (task: generate): POST /api/generate, the chat box
  int64_t max_new_tokens = 128;         // /api/generate: max_tokens at most
  int64_t max_draw = 16;                // /api/generate on a drawing run: images per request at most
  std::string report_html;              // the run's `braid report` page, served at GET /report (empty: 404)
};

class Server {
 public:
  Server(Embedder& e, const VectorIndex& index, ServerOptions opt);
  // A generative run without an index (`opt.generator` must be set; `run` names it in /api/health):
  // /api/generate and the page, no search.
  Server(const std::string& run, ServerOptions opt);
  ~Server();
  // Bind the listening socket; returns the port (useful with port 0). InputError when it cannot bind.
  int bind();
  // Serve until stop() (from any thread or a signal watcher). A stop() before run() makes run() return at once.
  void run();
  // Stop accepting (the listening socket closes now), close idle connections, let requests in flight
  // finish for up to `drain_s`, then close the rest; run() returns when every connection is done.
  void stop();
  // Most image/audio decodes that ran at once so far (<= max_decodes).
  int decodes_peak() const;
  // Most generations (streamed answers, drawings) that ran at once so far (<= max_generations(options())).
  int generations_peak() const;
  const ServerOptions& options() const { return opt_; }
  // Whether the server has an index (search routes); batcher() needs one.
  bool searches() const;
  const Batcher& batcher() const;

 private:
  struct Impl;
  ServerOptions opt_;
  std::unique_ptr<Impl> impl_;
};

// The generations a server with these options runs at once: max_generations, or the machine's cores.
int max_generations(const ServerOptions& o);

// The page and its assets (compiled in; see serve/assets.cpp).
const std::string& index_html();
const std::string* static_asset(const std::string& name, std::string* content_type);

}  // namespace braid::serve
