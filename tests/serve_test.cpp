// Index, search and serving: one-input preprocessing from memory, the FAISS index on disk, parity of
// `braid embed` / the server / training-time embeddings, the HTTP API and its errors, a soak test and
// a headless Chromium screenshot of the search page.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "braid/core/error.h"
#include "braid/core/safetensors.h"
#include "braid/data/image.h"
#include "braid/data/preprocess.h"
#include "braid/eval/evaluate.h"
#include "braid/serve/embedder.h"
#include "braid/serve/index.h"
#include "braid/serve/server.h"
#include "braid/run/run_dir.h"
#include "braid/run/weights.h"
#include "test_util.h"

using namespace braid;
using namespace braid::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string bytes_of(const std::string& path) { return read_file(path); }

// ---------------------------------------------------------------------------------------------
// One-input preprocessing: the bytes of a file give the tensors the file path gives.

TEST(ServeQuery, BytesAndFileGiveTheSameTensors) {
  auto dir = temp_dir("serve_query");
  ToyOptions o;
  o.n = 6;
  auto manifest = make_toy_dataset(dir + "/data", o);
  data::PreprocessOptions po;
  po.image.size = 24;
  po.audio.sample_rate = 8000;
  po.audio.n_fft = 256;
  po.audio.hop = 128;
  po.audio.n_mels = 16;
  data::Preprocessor pre(po, {"image", "audio"}, nullptr);
  for (int i = 0; i < 3; ++i) {
    const std::string img = dir + "/data/img/s" + std::to_string(i) + ".png";
    const std::string wav = dir + "/data/wav/s" + std::to_string(i) + ".wav";
    auto a = pre.image(img);
    auto b = serve::preprocess_query(pre, {"image", bytes_of(img), "upload.png"});
    ASSERT_EQ(a.sizes(), b.sizes());
    EXPECT_TRUE(torch::equal(a, b)) << img;
    auto c = pre.audio(wav);
    auto d = serve::preprocess_query(pre, {"audio", bytes_of(wav), "upload.wav"});
    ASSERT_EQ(c.sizes(), d.sizes());
    EXPECT_TRUE(torch::equal(c, d)) << wav;
  }
  // batches of queries are padded as the loader pads
  auto b = serve::query_batch("audio", {pre.audio(dir + "/data/wav/s0.wav"), pre.audio(dir + "/data/wav/s1.wav")});
  EXPECT_EQ(b.mods.at("audio").data.size(0), 2);
  EXPECT_EQ(b.mods.at("audio").lengths[1].item<int64_t>(), pre.audio(dir + "/data/wav/s1.wav").size(1));
}

TEST(ServeQuery, BadUploadsAreInputErrorsNamingTheUpload) {
  auto dir = temp_dir("serve_bad");
  ToyOptions o;
  o.n = 2;
  make_toy_dataset(dir + "/data", o);
  data::PreprocessOptions po;
  data::Preprocessor pre(po, {"image", "audio"}, nullptr);
  const std::string png = bytes_of(dir + "/data/img/s0.png");
  const std::string wav = bytes_of(dir + "/data/wav/s0.wav");
  ExpectInputError([&] { serve::preprocess_query(pre, {"image", "", "empty.png"}); }, "empty.png", "empty");
  ExpectInputError([&] { serve::preprocess_query(pre, {"image", "hello, not an image", "x.png"}); }, "x.png");
  ExpectInputError([&] { serve::preprocess_query(pre, {"image", png.substr(0, png.size() / 2), "half.png"}); },
                   "half.png");
  ExpectInputError([&] { serve::preprocess_query(pre, {"audio", wav.substr(0, 30), "cut.wav"}); }, "cut.wav");
  ExpectInputError([&] { serve::preprocess_query(pre, {"audio", "", "none.wav"}); }, "none.wav", "empty");
  ExpectInputError([&] { serve::preprocess_query(pre, {"video", "x", "v.mp4"}); }, "v.mp4", "modality");
  ExpectInputError([&] { serve::preprocess_query(pre, {"text", "hi", "text query"}); }, "tokenizer");
  ExpectInputError([&] { serve::query_from_file("image", dir + "/missing.png"); }, dir + "/missing.png");
}

// ---------------------------------------------------------------------------------------------
// The FAISS index: exact and approximate search, save/load, corruption.

serve::EmbeddingSet random_set(int64_t n, int64_t d, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  serve::EmbeddingSet e;
  e.vectors = torch::nn::functional::normalize(at::randn({n, d}, gen),
                                               torch::nn::functional::NormalizeFuncOptions().dim(1));
  e.modality = "image";
  e.run = "runs/x";
  for (int64_t i = 0; i < n; ++i) e.entries.push_back({i * 2, "id" + std::to_string(i), "/p/" + std::to_string(i), "c"});
  return e;
}

TEST(ServeIndex, FlatIvfHnswFindStoredVectorsAndRoundTrip) {
  auto dir = temp_dir("serve_index");
  auto e = random_set(600, 24, 7);
  serve::save_embeddings(dir + "/E.safetensors", e);
  auto e2 = serve::load_embeddings(dir + "/E.safetensors");
  ASSERT_TRUE(torch::equal(e.vectors, e2.vectors));
  ASSERT_EQ(e2.entries.size(), 600u);
  EXPECT_EQ(e2.entries[5].row, 10);
  EXPECT_EQ(e2.entries[5].path, "/p/5");

  auto queries = e.vectors.slice(0, 0, 100);
  // brute force reference: cosine top-5
  auto ref = torch::matmul(queries, e.vectors.t()).topk(5, 1);
  for (std::string type : {"flat", "ivf", "hnsw"}) {
    serve::IndexSpec spec;
    spec.type = type;
    spec.nlist = 16;
    spec.nprobe = 16;  // every list: exact
    auto ix = serve::VectorIndex::build(e2, spec);
    EXPECT_EQ(ix.size(), 600);
    EXPECT_EQ(ix.dim(), 24);
    auto hits = ix.search(queries, 5);
    int self = 0, overlap = 0;
    for (int64_t i = 0; i < 100; ++i) {
      ASSERT_EQ(hits[size_t(i)].size(), 5u) << type;
      if (hits[size_t(i)][0].slot == i) ++self;
      EXPECT_NEAR(hits[size_t(i)][0].score, std::get<0>(ref)[i][0].item<float>(), 1e-4) << type;
      std::set<int64_t> want;
      for (int j = 0; j < 5; ++j) want.insert(std::get<1>(ref)[i][j].item<int64_t>());
      for (auto& h : hits[size_t(i)]) overlap += want.count(h.slot);
    }
    EXPECT_EQ(self, 100) << type;
    EXPECT_GE(overlap, type == "hnsw" ? 480 : 500) << type << ": recall@5 of " << overlap / 500.0;
    ix.save(dir + "/" + type);
    auto back = serve::VectorIndex::load(dir + "/" + type);
    EXPECT_EQ(back.spec().type, type);
    EXPECT_EQ(back.entries()[3].id, "id3");
    auto h2 = back.search(queries, 5);
    for (int64_t i = 0; i < 100; ++i)
      for (int j = 0; j < 5; ++j) EXPECT_EQ(h2[size_t(i)][size_t(j)].slot, hits[size_t(i)][size_t(j)].slot) << type;
  }
}

TEST(ServeIndex, MissingOrCorruptIndexIsAClearError) {
  auto dir = temp_dir("serve_index_bad");
  auto e = random_set(50, 8, 3);
  auto ix = serve::VectorIndex::build(e, {});
  ix.save(dir + "/ok");
  ExpectInputError([&] { serve::VectorIndex::load(dir + "/nope"); }, dir + "/nope", "no such index");
  // flip bytes in the middle of index.faiss
  fs::copy(dir + "/ok", dir + "/flip", fs::copy_options::recursive);
  {
    std::fstream f(dir + "/flip/index.faiss", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.write("\xff\xff\xff\xff", 4);
  }
  ExpectInputError([&] { serve::VectorIndex::load(dir + "/flip"); }, dir + "/flip/index.faiss", "corrupt");
  // truncated index.faiss
  fs::copy(dir + "/ok", dir + "/cut", fs::copy_options::recursive);
  fs::resize_file(dir + "/cut/index.faiss", 40);
  ExpectInputError([&] { serve::VectorIndex::load(dir + "/cut"); }, dir + "/cut/index.faiss", "corrupt");
  // broken meta.json
  fs::copy(dir + "/ok", dir + "/meta", fs::copy_options::recursive);
  write_file(dir + "/meta/meta.json", "{\"format\": \"braid-index-1\", \"entr");
  ExpectInputError([&] { serve::VectorIndex::load(dir + "/meta"); }, dir + "/meta/meta.json", "JSON");
  // no index.faiss
  fs::copy(dir + "/ok", dir + "/gone", fs::copy_options::recursive);
  fs::remove(dir + "/gone/index.faiss");
  ExpectInputError([&] { serve::VectorIndex::load(dir + "/gone"); }, dir + "/gone/index.faiss", "missing");
  // embeddings whose sidecar disagrees
  serve::save_embeddings(dir + "/E.safetensors", e);
  write_file(dir + "/E.json", "{\"entries\": []}");
  ExpectInputError([&] { serve::load_embeddings(dir + "/E.safetensors"); }, dir + "/E.json", "entries");
  ExpectInputError([&] { serve::VectorIndex::build(e, {"cubic"}); }, "cubic", "flat, ivf or hnsw");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// A tiny dual tower trained once for the tests below (toy data: image, text, audio).

namespace {

const char* kAlignRecipe = R"(
task: align
seed: 1
threads: 1
data:
  workers: 1
  image: {size: 16}
  audio: {sample_rate: 8000, n_fft: 256, hop: 128, n_mels: 16}
  text: {vocab: 40}
model:
  name: dual_tower
  modalities: [image, text, audio]
  encoders:
    image: {name: image_cnn, channels: [4, 8], dim: 16}
    audio: {name: audio_cnn, channels: [4], dim: 16}
    text: {name: text_bow, embed: 16, dim: 16}
  embed_dim: 16
  loss: clip
  anchor: image
train: {epochs: 2, batch_size: 8, lr: 0.01, warmup_steps: 2}
)";

struct Trained {
  std::string dir, manifest, run, index;
  bool ok = false;
  std::string why;
};

const Trained& trained() {
  static Trained t = [] {
    Trained t;
    t.dir = temp_dir("serve_run");
    ToyOptions o;
    o.n = 48;
    t.manifest = make_toy_dataset(t.dir + "/data", o);
    write_file(t.dir + "/recipe.yaml", kAlignRecipe);
    t.run = t.dir + "/run";
    auto r = run_braid("train " + q(t.dir + "/recipe.yaml") + " --data " + q(t.manifest) + " --out " + q(t.run));
    if (r.code != 0) {
      t.why = "train failed: " + r.err;
      return t;
    }
    auto e = run_braid("embed " + q(t.run) + " --data " + q(t.manifest) + " --modality image --out " +
                       q(t.dir + "/img.safetensors"));
    if (e.code != 0) {
      t.why = "embed failed: " + e.err;
      return t;
    }
    t.index = t.dir + "/index";
    auto b = run_braid("index build --embeddings " + q(t.dir + "/img.safetensors") + " --type flat --out " + q(t.index));
    if (b.code != 0) {
      t.why = "index build failed: " + b.err;
      return t;
    }
    t.ok = true;
    return t;
  }();
  return t;
}

#define REQUIRE_TRAINED() ASSERT_TRUE(trained().ok) << trained().why

// `braid serve` in a child process on a free port; stopped with SIGTERM (graceful) by stop().
class ServerProcess {
 public:
  explicit ServerProcess(const std::string& extra = "") {
    const auto& t = trained();
    log_ = t.dir + "/serve_" + std::to_string(counter_++) + ".log";
    const std::string cmd = "exec " + std::string(BRAID_EXE) + " serve " + q(t.run) + " --index " + q(t.index) +
                            " --port 0 " + extra + " >" + q(log_) + " 2>&1";
    pid_ = fork();
    if (pid_ == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < until) {
      auto text = read_file(log_);
      auto at = text.find("http://127.0.0.1:");
      if (at != std::string::npos && text.find('/', at + 17) != std::string::npos) {
        port_ = std::stoi(text.substr(at + 17));
        break;
      }
      int st;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ~ServerProcess() {
    if (pid_ > 0) stop();
  }
  int port() const { return port_; }
  std::string log() const { return read_file(log_); }
  // VmHWM (peak) or VmRSS of the server in kB.
  long memory_kb(const char* key) const {
    std::ifstream f("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind(key, 0) == 0) return std::stol(line.substr(std::strlen(key) + 1));
    return -1;
  }
  // SIGTERM; returns the exit code (the server shuts down gracefully: 0).
  int stop() {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    int st = 0;
    for (int i = 0; i < 200; ++i) {
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return -2;  // did not stop within 10 s
  }

 private:
  static inline int counter_ = 0;
  pid_t pid_ = -1;
  int port_ = -1;
  std::string log_;
};

// A raw HTTP/1.0 exchange (no client-side path normalization).
std::string raw_http(int port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  (void)!write(fd, request.data(), request.size());
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  close(fd);
  return out;
}

int raw_status(int port, const std::string& path) {
  auto r = raw_http(port, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  if (r.size() < 12) return -1;
  return std::stoi(r.substr(9, 3));
}

std::vector<float> json_vector(const json& j) { return j.at("vector").get<std::vector<float>>(); }

double cosine(const torch::Tensor& a, const torch::Tensor& b) {
  return torch::nn::functional::cosine_similarity(a.view({1, -1}), b.view({1, -1})).item<double>();
}

torch::Tensor tensor_of(const std::vector<float>& v) { return torch::tensor(v); }

}  // namespace

// (a) Parity: `braid embed`, the server's /api/embed and embed() in the training-time evaluation path
// (eval::embed_all over the run's loader) agree on the same inputs.
TEST(ServeParity, EmbedCommandServerAndTrainingPathAgree) {
  REQUIRE_TRAINED();
  const auto& t = trained();
  for (std::string m : {"image", "text"}) {
    auto r = run_braid("embed " + q(t.run) + " --data " + q(t.manifest) + " --split test --modality " + m + " --out " +
                       q(t.dir + "/parity_" + m + ".safetensors"));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  // training-time path
  auto p = run::open_pipeline(t.run);
  braid::run::load_weights(*p.model, braid::run::RunDir(t.run).model());
  auto man = std::make_shared<data::Manifest>(data::Manifest::load(t.manifest));
  auto loader = p.loader(man, "test", false);
  auto ref = eval::embed_all(p, *loader);

  ServerProcess srv;
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client cli("127.0.0.1", srv.port());
  cli.set_read_timeout(30, 0);
  int compared = 0;
  for (std::string m : {"image", "text"}) {
    auto cmd = serve::load_embeddings(t.dir + "/parity_" + m + ".safetensors");
    ASSERT_TRUE(ref.vectors.count(m)) << m;
    auto rows = ref.index.at(m);
    ASSERT_EQ(cmd.vectors.size(0), rows.size(0)) << m;
    for (int64_t i = 0; i < rows.size(0); ++i) {
      const int64_t row = rows[i].item<int64_t>();
      // the same sample in the command's output
      int64_t j = -1;
      for (size_t k = 0; k < cmd.entries.size(); ++k)
        if (cmd.entries[k].row == row) j = int64_t(k);
      ASSERT_GE(j, 0) << "row " << row << " missing from braid embed output";
      auto a = ref.vectors.at(m)[i], b = cmd.vectors[j];
      EXPECT_GE(cosine(a, b), 0.9999) << m << " row " << row << " (braid embed vs training path)";
      // the server, from the file's bytes / the text
      const auto& s = man->samples()[size_t(row)];
      auto res = m == "image"
                     ? cli.Post("/api/embed", httplib::MultipartFormDataItems{{"image", read_file(s.image), "q.png", "image/png"}})
                     : cli.Post("/api/embed", json{{"text", *s.text_view("")}}.dump(), "application/json");
      ASSERT_TRUE(res) << httplib::to_string(res.error());
      ASSERT_EQ(res->status, 200) << res->body;
      auto v = tensor_of(json_vector(json::parse(res->body)));
      EXPECT_GE(cosine(a, v), 0.9999) << m << " row " << row << " (server vs training path)";
      EXPECT_NEAR(v.norm().item<double>(), 1.0, 1e-4);
      ++compared;
    }
  }
  EXPECT_GE(compared, 8);
  EXPECT_EQ(srv.stop(), 0) << "graceful shutdown on SIGTERM\n" << srv.log();
}

// (b) The server answers health, search and embed; bad requests get the right status codes.
TEST(ServeHttp, ApiAnswersAndRejectsBadRequests) {
  REQUIRE_TRAINED();
  const auto& t = trained();
  ServerProcess srv("--max-body-mb 1");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client cli("127.0.0.1", srv.port());
  cli.set_read_timeout(30, 0);

  auto h = cli.Get("/api/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto hj = json::parse(h->body);
  EXPECT_EQ(hj["status"], "ok");
  EXPECT_EQ(hj["index"]["count"], 48);

  auto s = cli.Post("/api/search", R"({"text": "red apple fruit", "k": 5})", "application/json");
  ASSERT_TRUE(s);
  ASSERT_EQ(s->status, 200) << s->body;
  auto sj = json::parse(s->body);
  ASSERT_EQ(sj["results"].size(), 5u);
  double prev = 2.0;
  for (auto& r : sj["results"]) {
    EXPECT_LE(r["score"].get<double>(), prev + 1e-6);
    prev = r["score"].get<double>();
    EXPECT_TRUE(fs::exists(r["path"].get<std::string>()));
  }
  // image upload search: a stored image finds itself first
  auto png = read_file(t.dir + "/data/img/s5.png");
  auto u = cli.Post("/api/search", httplib::MultipartFormDataItems{{"image", png, "s5.png", "image/png"}});
  ASSERT_TRUE(u);
  ASSERT_EQ(u->status, 200) << u->body;
  auto uj = json::parse(u->body);
  EXPECT_EQ(uj["results"][0]["id"], "s5");
  EXPECT_NEAR(uj["results"][0]["score"].get<double>(), 1.0, 1e-4);
  // audio upload embeds
  auto wav = read_file(t.dir + "/data/wav/s2.wav");
  auto a = cli.Post("/api/embed", httplib::MultipartFormDataItems{{"audio", wav, "s2.wav", "audio/wav"}});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 200) << a->body;
  EXPECT_EQ(json::parse(a->body)["dim"], 16);

  // a corrupt PNG upload: 400 with a JSON message naming the upload
  auto bad = cli.Post("/api/search", httplib::MultipartFormDataItems{{"image", png.substr(0, 40), "broken.png", "image/png"}});
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  EXPECT_NE(json::parse(bad->body)["error"].get<std::string>().find("broken.png"), std::string::npos) << bad->body;
  auto cut = cli.Post("/api/embed", httplib::MultipartFormDataItems{{"audio", wav.substr(0, 30), "cut.wav", "audio/wav"}});
  ASSERT_TRUE(cut);
  EXPECT_EQ(cut->status, 400) << cut->body;
  for (std::string body : {"not json", "{}", R"({"text": 3})", R"({"text": ""})", R"({"text": "x", "k": 0})"}) {
    auto r = cli.Post("/api/search", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_TRUE(json::parse(r->body).contains("error")) << body;
  }
  // cross-site requests are refused before any work: a foreign Host (DNS rebinding), a plain-text
  // POST (what a form on another site can send without a preflight), a multipart upload from
  // another origin
  auto rebound = cli.Get("/api/health", httplib::Headers{{"Host", "evil.example:80"}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403) << rebound->body;
  auto plain = cli.Post("/api/search", R"({"text": "red apple"})", "text/plain");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->status, 415) << plain->body;
  auto foreign = cli.Post("/api/search", httplib::Headers{{"Origin", "http://evil.example"}},
                          httplib::MultipartFormDataItems{{"text", "red apple", "", ""}});
  ASSERT_TRUE(foreign);
  EXPECT_EQ(foreign->status, 403) << foreign->body;
  auto same = cli.Post("/api/search", httplib::Headers{{"Origin", "http://127.0.0.1:" + std::to_string(srv.port())}},
                       httplib::MultipartFormDataItems{{"text", "red apple", "", ""}});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->status, 200) << same->body;
  EXPECT_EQ(cli.Get("/api/health", httplib::Headers{{"Host", "localhost:1"}})->status, 200);
  // k must be a plain positive integer: no exponent, no trailing text, no sign
  for (std::string k : {"1e9", "5abc", "-3", "", "99999999999"}) {
    auto r = cli.Post("/api/search?k=" + k, R"({"text": "red apple"})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << "k=" << k << ": " << r->body;
  }
  auto k3 = cli.Post("/api/search?k=3", R"({"text": "red apple"})", "application/json");
  ASSERT_TRUE(k3);
  ASSERT_EQ(k3->status, 200) << k3->body;
  EXPECT_EQ(json::parse(k3->body)["results"].size(), 3u);
  // invalid UTF-8 in an upload's file name is echoed replaced, never a 500
  auto u8 = cli.Post("/api/search", httplib::MultipartFormDataItems{{"image", png.substr(0, 40), "bad\xff\xfe.png", "image/png"}});
  ASSERT_TRUE(u8);
  EXPECT_EQ(u8->status, 400) << u8->body;
  EXPECT_NE(json::parse(u8->body)["error"].get<std::string>().find("bad\xef\xbf\xbd"), std::string::npos) << u8->body;
  // a text query far longer than the model reads: only its prefix is tokenized and echoed
  std::string longq;
  while (longq.size() < 600000) longq += "red apple 苹果 ";
  auto lq = cli.Post("/api/search", json{{"text", longq}}.dump(), "application/json");
  ASSERT_TRUE(lq);
  ASSERT_EQ(lq->status, 200) << lq->body.substr(0, 200);
  const auto echoed = json::parse(lq->body)["query"]["text"].get<std::string>();
  EXPECT_LE(echoed.size(), 4096u);
  EXPECT_EQ(longq.compare(0, echoed.size(), echoed), 0) << "the echo is a prefix cut on a character boundary";
  // body over the limit: 413
  auto big = cli.Post("/api/search", httplib::MultipartFormDataItems{{"image", std::string(1500000, 'x'), "big.png", "image/png"}});
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_EQ(big->status, 413);
  // unknown routes: 404 (JSON)
  auto nf = cli.Get("/api/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_TRUE(json::parse(nf->body).contains("error"));
  // the page and its assets
  auto page = cli.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<form"), std::string::npos);
  EXPECT_EQ(cli.Get("/static/app.js")->status, 200);
  // media: only files the index references, by slot
  auto med = cli.Get("/media/0");
  ASSERT_TRUE(med);
  EXPECT_EQ(med->status, 200);
  auto meta = json::parse(read_file(t.index + "/meta.json"));
  EXPECT_EQ(med->body, read_file(meta["entries"][0]["path"].get<std::string>()));
  EXPECT_EQ(med->get_header_value("Content-Type"), "image/png");
  for (std::string path : {"/media/48", "/media/-1", "/media/../../../../etc/passwd", "/media/%2e%2e/%2e%2e/etc/passwd",
                           "/static/../../../../etc/passwd", "/static/..%2f..%2fetc%2fpasswd", "/../../etc/passwd",
                           "/media/0/../../etc/passwd", "/media?path=/etc/passwd", "/etc/passwd"}) {
    EXPECT_EQ(raw_status(srv.port(), path), 404) << path;
  }
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// (c) Soak: several client threads, mixed requests; no unexpected failures and flat peak memory.
void soak(int threads, int per_thread) {
  REQUIRE_TRAINED();
  const auto& t = trained();
  ServerProcess srv;
  ASSERT_GT(srv.port(), 0) << srv.log();
  std::vector<std::string> pngs;
  for (int i = 0; i < 8; ++i) pngs.push_back(read_file(t.dir + "/data/img/s" + std::to_string(i) + ".png"));
  const char* texts[] = {"red apple fruit", "blue ocean water", "green forest tree and more", "sun"};
  std::atomic<int> unexpected{0}, done{0};
  std::mutex mu;
  std::string first_failure;
  auto client = [&](int tid, int from, int to) {
    httplib::Client cli("127.0.0.1", srv.port());
    cli.set_read_timeout(60, 0);
    for (int i = from; i < to; ++i) {
      const int kind = (i + tid) % 3;
      const int want = kind == 2 ? 400 : 200;
      auto r = kind == 0 ? cli.Post("/api/search", json{{"text", texts[i % 4]}, {"k", 5}}.dump(), "application/json")
               : kind == 1
                   ? cli.Post("/api/search", httplib::MultipartFormDataItems{{"image", pngs[size_t(i % 8)], "q.png", "image/png"}})
                   : cli.Post("/api/search", httplib::MultipartFormDataItems{
                                                 {"image", pngs[size_t(i % 8)].substr(0, 50 + i % 200), "bad.png", "image/png"}});
      if (!r || r->status != want) {
        ++unexpected;
        std::lock_guard<std::mutex> l(mu);
        if (first_failure.empty())
          first_failure = r ? std::to_string(r->status) + " " + r->body : httplib::to_string(r.error());
      }
      ++done;
    }
  };
  auto run_half = [&](int half) {
    std::vector<std::thread> ts;
    for (int k = 0; k < threads; ++k)
      ts.emplace_back(client, k, half * per_thread / 2, (half + 1) * per_thread / 2);
    for (auto& th : ts) th.join();
  };
  run_half(0);
  const long peak1 = srv.memory_kb("VmHWM:");
  const long rss1 = srv.memory_kb("VmRSS:");
  run_half(1);
  const long peak2 = srv.memory_kb("VmHWM:");
  const long rss2 = srv.memory_kb("VmRSS:");
  std::printf("soak: %d requests, peak RSS %ld kB after the first half, %ld kB after the second (RSS %ld -> %ld kB)\n",
              done.load(), peak1, peak2, rss1, rss2);
  EXPECT_EQ(unexpected.load(), 0) << first_failure;
  EXPECT_EQ(done.load(), threads * per_thread);
  ASSERT_GT(peak1, 0);
  EXPECT_LE(peak2, peak1 + peak1 / 20 + 8 * 1024) << "peak RSS still grows";
  auto h = httplib::Client("127.0.0.1", srv.port()).Get("/api/health");
  ASSERT_TRUE(h);
  auto hj = json::parse(h->body);
  // bad uploads never reach the batcher; batching merged concurrent requests into fewer forwards
  EXPECT_LT(hj["batches"].get<int64_t>(), hj["requests"].get<int64_t>());
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

TEST(ServeSoak, MixedRequestsShort) { soak(4, 150); }
TEST(ServeSoak, SlowMixedRequestsLong) { soak(8, 500); }

// (d) Headless Chromium renders the result page of `/?q=...` (the page searches on load): a screenshot,
// and the DOM after the page's script ran, whose result list must show the hits of /api/search.
TEST(ServeBrowser, BrowserScreenshotOfAResultPage) {
  std::string chromium;
  for (const char* c : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(c)) {
      chromium = c;
      break;
    }
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium); screenshot test skipped";
  REQUIRE_TRAINED();
  const auto& t = trained();
  ServerProcess srv;
  ASSERT_GT(srv.port(), 0) << srv.log();
  const std::string shot = t.dir + "/screenshot.png";
  fs::remove(shot);
  const std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/?q=red+apple+fruit";
  const std::string cmd = "timeout 120 " + chromium + " --headless --disable-gpu --no-sandbox --hide-scrollbars " +
                          "--user-data-dir=" + q(t.dir + "/chromium-profile") +
                          " --virtual-time-budget=10000 --window-size=1000,700 --screenshot=" + q(shot) + " " + q(url) +
                          " >" + q(t.dir + "/chromium.log") + " 2>&1";
  int st = std::system(cmd.c_str());
  ASSERT_TRUE(fs::exists(shot)) << "no screenshot; exit " << st << "\n" << read_file(t.dir + "/chromium.log");
  auto img = data::decode_image_file(shot);
  EXPECT_EQ(img.width, 1000);
  EXPECT_EQ(img.height, 700);
  auto px = torch::from_blob(img.rgb.data(), {img.height, img.width, 3}, torch::kUInt8).to(torch::kFloat);
  const double var = px.var().item<double>();
  EXPECT_GT(var, 100.0) << "blank screenshot";
  std::set<uint32_t> colors;
  for (size_t i = 0; i + 2 < img.rgb.size(); i += 3)
    colors.insert(uint32_t(img.rgb[i]) << 16 | uint32_t(img.rgb[i + 1]) << 8 | img.rgb[i + 2]);
  EXPECT_GT(colors.size(), 50u) << "the page shows no result images";
  // the page ran the search on load
  auto h = httplib::Client("127.0.0.1", srv.port()).Get("/api/health");
  ASSERT_TRUE(h);
  EXPECT_GE(json::parse(h->body)["requests"].get<int64_t>(), 1);
  fs::copy_file(shot, t.dir + "/../braid_serve_screenshot.png", fs::copy_options::overwrite_existing);

  // The DOM after the page's script ran: the result list holds the hits /api/search gives for the same
  // query (the page asks for k = 12), in order, each captioned "<b>score</b><br>id · label".
  auto api = httplib::Client("127.0.0.1", srv.port())
                 .Post("/api/search", R"({"text": "red apple fruit", "k": 12})", "application/json");
  ASSERT_TRUE(api && api->status == 200);
  const auto hits = json::parse(api->body)["results"];
  ASSERT_EQ(hits.size(), 12u) << api->body;
  const std::string dom_file = t.dir + "/dom.html";
  const std::string dom_cmd = "timeout 120 " + chromium + " --headless --disable-gpu --no-sandbox " +
                              "--user-data-dir=" + q(t.dir + "/chromium-profile") +
                              " --virtual-time-budget=10000 --dump-dom " + q(url) + " >" + q(dom_file) + " 2>" +
                              q(t.dir + "/chromium_dom.log");
  st = std::system(dom_cmd.c_str());
  const std::string dom = read_file(dom_file);
  ASSERT_NE(dom.find("</html>"), std::string::npos) << "no DOM; exit " << st << "\n" << read_file(t.dir + "/chromium_dom.log");
  const auto begin = dom.find("<main id=\"results\"");
  ASSERT_NE(begin, std::string::npos) << dom;
  const auto end = dom.find("</main>", begin);
  ASSERT_NE(end, std::string::npos) << dom;
  const std::string list = dom.substr(begin, end - begin);
  size_t cards = 0;
  for (auto at = list.find("<figure class=\"card\">"); at != std::string::npos; at = list.find("<figure class=\"card\">", at + 1))
    ++cards;
  EXPECT_EQ(cards, hits.size()) << list;
  size_t pos = 0;
  for (size_t i = 0; i < hits.size(); ++i) {
    const auto& r = hits[i];
    const std::string label = r["label"].get<std::string>();
    const std::string caption = r["id"].get<std::string>() + (label.empty() ? "" : " \u00b7 " + label) + "</figcaption>";
    const auto at = list.find(caption, pos);
    ASSERT_NE(at, std::string::npos) << "hit " << i << " (" << caption << ") is not in the result list"
                                     << (i ? " after hit " + std::to_string(i - 1) : std::string()) << ":\n" << list;
    pos = at + caption.size();
  }
  // the expected top hit: its score, its id (as the image's alt text and caption) and its label
  const auto& top = hits[0];
  const std::string top_caption = fmt::format("<figcaption><b>{:.3f}</b><br>{}", top["score"].get<double>(),
                                              top["id"].get<std::string>());
  EXPECT_NE(list.find(top_caption), std::string::npos) << top_caption << " not in:\n" << list;
  const auto second_card = list.find("<figure class=\"card\">", list.find("<figure class=\"card\">") + 1);
  EXPECT_LT(list.find("alt=\"" + top["id"].get<std::string>() + "\""), second_card) << list;
  EXPECT_NE(dom.find("12 results for text query \u201cred apple fruit\u201d"), std::string::npos)
      << dom.substr(0, std::min<size_t>(dom.size(), 3000));
  EXPECT_EQ(srv.stop(), 0) << srv.log();
}

// The CLI: one-line errors and exit code 2 for bad inputs; search finds a stored image.
TEST(ServeCli, SearchAndErrors) {
  REQUIRE_TRAINED();
  const auto& t = trained();
  auto r = run_braid("search " + q(t.run) + " --index " + q(t.index) + " --image " + q(t.dir + "/data/img/s7.png") +
                     " --k 3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = json::parse(r.out.substr(r.out.find("{\"query\"")));
  ASSERT_EQ(j["results"].size(), 3u);
  EXPECT_EQ(j["results"][0]["id"], "s7");
  auto tx = run_braid("search " + q(t.run) + " --index " + q(t.index) + " --text 'blue ocean water'");
  EXPECT_EQ(tx.code, 0) << tx.err;
  EXPECT_NE(tx.out.find("rank"), std::string::npos);

  write_file(t.dir + "/corrupt.png", "\x89PNG\r\n\x1a\n garbage");
  auto bad = run_braid("search " + q(t.run) + " --index " + q(t.index) + " --image " + q(t.dir + "/corrupt.png"));
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("corrupt.png"), std::string::npos) << bad.err;
  EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << bad.err;
  auto noidx = run_braid("search " + q(t.run) + " --index " + q(t.dir + "/nope") + " --text hi");
  EXPECT_EQ(noidx.code, 2);
  EXPECT_NE(noidx.err.find("nope"), std::string::npos) << noidx.err;
  auto noemb = run_braid("index build --embeddings " + q(t.dir + "/none.safetensors") + " --out " + q(t.dir + "/x"));
  EXPECT_EQ(noemb.code, 2);
  EXPECT_NE(noemb.err.find("none.safetensors"), std::string::npos) << noemb.err;
  auto none = run_braid("search " + q(t.run) + " --index " + q(t.index));
  EXPECT_EQ(none.code, 2) << none.err;
  for (std::string type : {"ivf", "hnsw"}) {
    auto b = run_braid("index build --embeddings " + q(t.dir + "/img.safetensors") + " --type " + type +
                       " --nlist 4 --m 8 --out " + q(t.dir + "/idx_" + type));
    ASSERT_EQ(b.code, 0) << b.err;
    auto s = run_braid("search " + q(t.run) + " --index " + q(t.dir + "/idx_" + type) + " --image " +
                       q(t.dir + "/data/img/s7.png") + " --k 1 --json");
    ASSERT_EQ(s.code, 0) << s.err;
    EXPECT_NE(s.out.find("\"id\":\"s7\""), std::string::npos) << type << ": " << s.out;
  }
}

// ---------------------------------------------------------------------------------------------
// (f) Hardening: hostile clients against an in-process server with small limits. Each attack ends in
// its one-line JSON error within the limits, and the server keeps answering.

namespace {

// An in-process server (the trained run and index) on a free port, run() on its own thread.
struct LiveServer {
  serve::Embedder emb;
  serve::VectorIndex ix;
  serve::Server srv;
  int port = -1;
  std::thread th;
  explicit LiveServer(serve::ServerOptions o)
      : emb(trained().run), ix(serve::VectorIndex::load(trained().index)), srv(emb, ix, [&] {
          o.port = 0;
          return o;
        }()) {
    port = srv.bind();
    th = std::thread([this] { srv.run(); });
  }
  ~LiveServer() {
    srv.stop();
    if (th.joinable()) th.join();
  }
};

int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{20, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_text(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close early (it refused the request): the answer is what counts
    off += size_t(n);
  }
}

std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, size_t(n));
  return out;
}

// Status and body of one raw exchange (the request is sent whole; the answer read to EOF).
struct Answer {
  int status = -1;
  std::string body;
  double seconds = 0;
};
Answer http_exchange(int port, const std::string& request) {
  const auto t0 = std::chrono::steady_clock::now();
  int fd = connect_to(port);
  Answer a;
  if (fd < 0) return a;
  send_text(fd, request);
  const std::string r = read_all(fd);
  close(fd);
  a.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.size() >= 12 && r.rfind("HTTP/1.1 ", 0) == 0) a.status = std::stoi(r.substr(9, 3));
  auto body = r.find("\r\n\r\n");
  if (body != std::string::npos) a.body = r.substr(body + 4);
  return a;
}

std::string post_head(const std::string& extra) {
  return "POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n" + extra;
}

serve::ServerOptions small_limits() {
  serve::ServerOptions o;
  o.max_body = 64 << 10;
  o.max_header_bytes = 8 << 10;
  o.max_headers = 20;
  o.header_timeout_s = 1.0;
  o.io_timeout_s = 1.0;
  o.request_timeout_s = 5.0;
  o.http_threads = 2;
  o.drain_s = 3.0;
  return o;
}

// The answer has `code` and a one-line JSON error containing `text`.
::testing::AssertionResult IsError(const Answer& a, int code, const std::string& text) {
  if (a.status == code && a.body.find("\"error\"") != std::string::npos && a.body.find(text) != std::string::npos &&
      a.body.find('\n') == std::string::npos)
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected " << code << " with an error containing '" << text << "', got "
                                       << a.status << " " << a.body.substr(0, 300);
}
#define EXPECT_ERROR(a, code, text) EXPECT_TRUE(IsError((a), (code), (text)))

}  // namespace

TEST(ServeHardening, OversizedAndDisguisedRequestsGetTheirErrors) {
  REQUIRE_TRAINED();
  LiveServer live(small_limits());
  const int port = live.port;
  // a chunked body of 1 MB (over 64 KB): bounded like a Content-Length one
  std::string chunked = post_head("Transfer-Encoding: chunked\r\n\r\n");
  const std::string chunk(16384, 'a');
  for (int i = 0; i < 64; ++i) chunked += fmt::format("{:x}\r\n{}\r\n", chunk.size(), chunk);
  chunked += "0\r\n\r\n";
  EXPECT_ERROR(http_exchange(port, chunked), 413, "request body over the size limit (65536 bytes)");
  EXPECT_ERROR(http_exchange(port, post_head("Content-Length: 1000000\r\n\r\n") + std::string(1000000, ' ')), 413,
               "request body over the size limit");
  // a small chunked body is fine
  const std::string q = R"({"text": "red heart", "k": 2})";
  auto ok = http_exchange(port, post_head("Transfer-Encoding: chunked\r\n\r\n") + fmt::format("{:x}\r\n{}\r\n0\r\n\r\n", q.size(), q));
  EXPECT_EQ(ok.status, 200) << ok.body;
  // compressed bodies (48 KB of gzip can inflate to 50 MB) and unknown transfer codings are refused unread
  EXPECT_ERROR(http_exchange(port, post_head("Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd")), 415,
               "compressed request bodies are not accepted");
  EXPECT_ERROR(http_exchange(port, post_head("Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")), 501,
               "Transfer-Encoding 'gzip, chunked' is not accepted");
  // headers: too many, one too long, a request line too long (the parser would read any length)
  std::string many = "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
  for (int i = 0; i < 30; ++i) many += fmt::format("X-{}: y\r\n", i);
  EXPECT_ERROR(http_exchange(port, many + "\r\n"), 431, "headers over the limit (8192 bytes, 20 lines)");
  EXPECT_ERROR(http_exchange(port, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + std::string(16384, 'a') + "\r\n\r\n"),
               431, "headers over the limit");
  EXPECT_ERROR(http_exchange(port, "GET /api/health?" + std::string(1 << 20, 'a') + " HTTP/1.1\r\n\r\n"), 431,
               "request line or headers over the limit");
  // many ranges of one file: the whole file once (200), not 100 copies
  const auto file = read_file(live.ix.entries()[0].path);
  std::string ranges = "bytes=0-";
  for (int i = 0; i < 99; ++i) ranges += ",0-";
  auto media = http_exchange(port, "GET /media/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nRange: " + ranges + "\r\n\r\n");
  EXPECT_EQ(media.status, 200);
  EXPECT_EQ(media.body.size(), file.size());
  auto one = http_exchange(port, "GET /media/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nRange: bytes=0-9\r\n\r\n");
  EXPECT_EQ(one.status, 206);
  EXPECT_EQ(one.body, file.substr(0, 10));
  // and the server still answers
  EXPECT_EQ(http_exchange(port, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").status, 200);
}

TEST(ServeHardening, HeaderDeadlineEndsSlowClientsAndExtraConnectionsGet503) {
  REQUIRE_TRAINED();
  auto o = small_limits();
  o.max_connections = 3;
  LiveServer live(o);
  // slowloris: a header line, then nothing; the header deadline (1 s) answers 408 and frees the thread
  int slow[3];
  for (int& fd : slow) {
    fd = connect_to(live.port);
    send_text(fd, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // all 3 connection threads are held: a 4th connection is answered 503 at once, not queued
  auto busy = http_exchange(live.port, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  EXPECT_ERROR(busy, 503, "server busy");
  EXPECT_LT(busy.seconds, 0.5);
  const auto t0 = std::chrono::steady_clock::now();
  for (int fd : slow) {
    const std::string r = read_all(fd);
    close(fd);
    EXPECT_EQ(r.rfind("HTTP/1.1 408", 0), 0u) << r;
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(waited, 2.5) << "slow clients held their threads past the 1 s header deadline";
  // a body that stops half-way: 408 after the per-read timeout (1 s), not the 5 s request deadline
  int fd = connect_to(live.port);
  send_text(fd, post_head("Content-Length: 100\r\n\r\n") + "{\"text\": ");
  const auto t1 = std::chrono::steady_clock::now();
  const std::string r = read_all(fd);
  close(fd);
  EXPECT_EQ(r.rfind("HTTP/1.1 408", 0), 0u) << r;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count(), 2.5);
  EXPECT_EQ(http_exchange(live.port, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").status, 200);
}

TEST(ServeHardening, ConcurrentDecodesAreBounded) {
  REQUIRE_TRAINED();
  auto o = small_limits();
  o.max_body = 8 << 20;
  o.request_timeout_s = 60;
  o.io_timeout_s = 30;
  o.max_decodes = 1;
  LiveServer live(o);
  // a 1024x1024 noise PNG (~3 MB): each decode takes a while, so parallel uploads overlap
  TempDir d("decode_png");
  std::vector<uint8_t> px(1024 * 1024 * 3);
  uint32_t x = 12345;
  for (auto& p : px) p = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
  data::write_png(d.file("big.png"), 1024, 1024, 3, px.data());
  const std::string png = read_file(d.file("big.png"));
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i)
    ts.emplace_back([&] {
      httplib::Client cli("127.0.0.1", live.port);
      cli.set_read_timeout(60, 0);
      auto r = cli.Post("/api/embed", httplib::MultipartFormDataItems{{"image", png, "big.png", "image/png"}});
      if (r && r->status == 200) ++ok;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ(live.srv.decodes_peak(), 1) << "more image decodes ran at once than max_decodes";
}

TEST(ServeHardening, StopFinishesRequestsInFlightAndDropsUnreadOnes) {
  REQUIRE_TRAINED();
  {  // a stop before run() is not lost: run() returns at once
    auto o = small_limits();
    serve::Embedder emb(trained().run);
    auto ix = serve::VectorIndex::load(trained().index);
    o.port = 0;
    serve::Server srv(emb, ix, o);
    srv.bind();
    srv.stop();
    const auto t0 = std::chrono::steady_clock::now();
    srv.run();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.0);
  }
  auto o = small_limits();
  o.header_timeout_s = 30;
  o.io_timeout_s = 30;
  o.request_timeout_s = 30;
  auto live = std::make_unique<LiveServer>(o);
  // one request whose body is half sent (in flight), one whose headers are half sent (not yet a request)
  const std::string q = R"({"text": "red heart", "k": 2})";
  int inflight = connect_to(live->port);
  send_text(inflight, post_head(fmt::format("Content-Length: {}\r\n\r\n", q.size())) + q.substr(0, 5));
  int unread = connect_to(live->port);
  send_text(unread, "GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  const int port = live->port;
  std::thread stopper([&] { live.reset(); });  // stop() + wait for run() to return
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int late = connect_to(port);  // the listening socket is closed at once
  EXPECT_LT(late, 0);
  if (late >= 0) close(late);
  send_text(inflight, q.substr(5));
  const std::string r = read_all(inflight);
  close(inflight);
  EXPECT_EQ(r.rfind("HTTP/1.1 200", 0), 0u) << r;
  EXPECT_NE(r.find("Connection: close"), std::string::npos) << r;
  const std::string u = read_all(unread);
  close(unread);
  EXPECT_EQ(u.find("200 OK"), std::string::npos) << u;
  stopper.join();
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(took, 2.5) << "stop() waited for the unread request instead of dropping it";
}
