// `braid serve` with a generative run: POST /api/generate streams the answer as server-sent events (the
// same text as `braid generate`), bad requests get one-line 400s, and the page's chat box shows the streamed
// answer (headless Chromium, asserting the text in the DOM).
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdlib>
#include <thread>
#include <vector>
#include <filesystem>
#include <sstream>

#include "mllm_fixture.h"
#include "serve_process.h"
#include "test_util.h"

using namespace braid::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct GenRun {
  std::string dir, manifest, run, index, why;
  bool ok = false;
};

// A tiny generative run on the toy data, and an index of its image embeddings (once per process).
const GenRun& gen_run() {
  static GenRun t = [] {
    GenRun t;
    t.dir = temp_dir("mllm_serve");
    t.manifest = make_toy_dataset(t.dir + "/data", ToyOptions{32, 2, true, false, true});
    write_file(t.dir + "/r.yaml", kTinyGenerateRecipe);
    t.run = t.dir + "/run";
    auto r = run_braid("train " + q(t.dir + "/r.yaml") + " --data " + q(t.manifest) + " --out " + q(t.run));
    if (r.code != 0) return t.why = "train failed: " + r.err, t;
    auto e = run_braid("embed " + q(t.run) + " --data " + q(t.manifest) + " --modality image --out " +
                       q(t.dir + "/img.safetensors"));
    if (e.code != 0) return t.why = "embed failed: " + e.err, t;
    t.index = t.dir + "/index";
    auto b = run_braid("index build --embeddings " + q(t.dir + "/img.safetensors") + " --type flat --out " + q(t.index));
    if (b.code != 0) return t.why = "index build failed: " + b.err, t;
    t.ok = true;
    return t;
  }();
  return t;
}

// `braid serve RUN --index IDX --port 0 EXTRA` in a child process, a fresh log beside the run for each;
// SIGTERM on destruction.
struct Serve : ServeProcess {
  explicit Serve(const std::string& extra = "")
      : ServeProcess(q(gen_run().run) + " --index " + q(gen_run().index) + " --port 0 --threads 1 " + extra,
                     fresh_serve_log(gen_run().dir)) {}
};

// The events of a text/event-stream body: (name, data JSON).
std::vector<std::pair<std::string, json>> events(const std::string& body) {
  std::vector<std::pair<std::string, json>> out;
  size_t at = 0;
  while (at < body.size()) {
    size_t end = body.find("\n\n", at);
    if (end == std::string::npos) end = body.size();
    std::string name = "message", data;
    std::stringstream ss(body.substr(at, end - at));
    for (std::string line; std::getline(ss, line);) {
      if (line.rfind("event: ", 0) == 0) name = line.substr(7);
      if (line.rfind("data: ", 0) == 0) data += line.substr(6);
    }
    if (!data.empty()) out.emplace_back(name, json::parse(data));
    at = end + 2;
  }
  return out;
}

// POST /api/generate with an image and a prompt (multipart), as the page and curl send it.
httplib::Result ask_image(httplib::Client& c, const std::string& png, const std::string& prompt) {
  httplib::MultipartFormDataItems form{{"image", png, "asked.png", "image/png"}, {"prompt", prompt, "", ""}};
  return c.Post("/api/generate", form);
}

}  // namespace

TEST(MLLMServe, GenerateStreamsTheAnswerOfBraidGenerate) {
  const auto& t = gen_run();
  ASSERT_TRUE(t.ok) << t.why;
  Serve srv;
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  auto health = c.Get("/api/health");
  ASSERT_TRUE(health && health->status == 200);
  EXPECT_TRUE(json::parse(health->body)["generates"].get<bool>());
  // the run's training report is linked from the page and served at /report
  EXPECT_TRUE(json::parse(health->body)["report"].get<bool>());
  auto report = c.Get("/report");
  ASSERT_TRUE(report && report->status == 200);
  EXPECT_NE(report->body.find("<html"), std::string::npos);
  EXPECT_NE(report->body.find("generate"), std::string::npos) << "the report shows the run's task";

  auto media = c.Get("/media/0");  // an indexed image: ask about it through the API and the CLI
  ASSERT_TRUE(media && media->status == 200);
  const std::string img = t.dir + "/asked.png";
  write_file(img, media->body);
  auto res = ask_image(c, media->body, "what is shown?");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type").rfind("text/event-stream", 0), 0u);
  auto ev = events(res->body);
  ASSERT_FALSE(ev.empty()) << res->body;
  ASSERT_EQ(ev.back().first, "done") << res->body;
  std::string streamed;
  for (size_t i = 0; i + 1 < ev.size(); ++i) {
    EXPECT_EQ(ev[i].first, "message");
    streamed += ev[i].second["text"].get<std::string>();
  }
  const auto done = ev.back().second;
  EXPECT_EQ(streamed, done["text"].get<std::string>()) << "the pieces add up to the answer";
  EXPECT_EQ(done["prompt"], "what is shown?");
  EXPECT_EQ(done["task"], "name") << "the prompt of task 'name'";
  auto cli = run_braid("generate " + q(t.run) + " --image " + q(img) + " --prompt 'what is shown?' --json");
  ASSERT_EQ(cli.code, 0) << cli.err;
  EXPECT_EQ(json::parse(cli.out.substr(cli.out.rfind('{')))["text"], done["text"]) << "server and CLI agree";

  // a text-only prompt (JSON) and a task by name
  auto js = c.Post("/api/generate", R"({"task": "group", "max_tokens": 4})", "application/json");
  ASSERT_TRUE(js);
  EXPECT_EQ(js->status, 400) << "task group reads an image: " << js->body;
  auto txt = c.Post("/api/generate", R"({"prompt": "what is shown?", "max_tokens": 4})", "application/json");
  ASSERT_TRUE(txt && txt->status == 200) << (txt ? txt->body : "");
  EXPECT_EQ(events(txt->body).back().first, "done");

  // bad requests: one-line JSON errors before any stream
  for (const auto& [body, what] : std::vector<std::pair<std::string, std::string>>{
           {R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
           {R"({"prompt": "x", "temperature": -1})", "temperature"},
           {R"({"prompt": 5})", "prompt"},
           {R"({})", "nothing to answer"},
           {"[1, 2", "not JSON"}}) {
    auto r = c.Post("/api/generate", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400) << body;
    EXPECT_NE(json::parse(r->body)["error"].get<std::string>().find(what), std::string::npos) << r->body;
  }
  httplib::MultipartFormDataItems bad_img{{"image", "not a png at all", "x.png", "image/png"}};
  auto bi = c.Post("/api/generate", bad_img);
  ASSERT_TRUE(bi);
  EXPECT_EQ(bi->status, 400) << bi->body;
}

TEST(MLLMServe, MaxNewTokensFlagBoundsRequests) {
  const auto& t = gen_run();
  ASSERT_TRUE(t.ok) << t.why;
  Serve srv("--max-new-tokens 4 --max-generations 1");
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  // --max-generations 1: concurrent prompts wait their turn (all answered), never two at once
  std::vector<std::thread> ts;
  std::atomic<int> answered{0};
  for (int i = 0; i < 4; ++i)
    ts.emplace_back([&] {
      httplib::Client ci("127.0.0.1", srv.port());
      ci.set_read_timeout(60, 0);
      auto r = ci.Post("/api/generate", R"({"prompt": "what is shown?", "max_tokens": 4})", "application/json");
      if (r && r->status == 200 && events(r->body).back().first == "done") ++answered;
    });
  for (auto& th : ts) th.join();
  EXPECT_EQ(answered.load(), 4);
  auto health = json::parse(c.Get("/api/health")->body);
  EXPECT_EQ(health["max_generations"], 1);
  EXPECT_EQ(health["generations_peak"], 1);
  EXPECT_EQ(health["generations"], 4);
  auto over = c.Post("/api/generate", R"({"prompt": "what is shown?", "max_tokens": 5})", "application/json");
  ASSERT_TRUE(over);
  EXPECT_EQ(over->status, 400);
  EXPECT_NE(over->body.find("expected 1..4"), std::string::npos) << over->body;
  auto ok = c.Post("/api/generate", R"({"prompt": "what is shown?", "max_tokens": 4})", "application/json");
  ASSERT_TRUE(ok && ok->status == 200);
  EXPECT_LE(events(ok->body).back().second["tokens"].get<int64_t>(), 4);
}

TEST(MLLMServe, BrowserChatBoxShowsTheStreamedAnswer) {
  std::string chromium;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(p)) chromium = p;
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium); browser test skipped";
  const auto& t = gen_run();
  ASSERT_TRUE(t.ok) << t.why;
  Serve srv;
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  auto media = c.Get("/media/1");
  ASSERT_TRUE(media && media->status == 200);
  auto res = ask_image(c, media->body, "what is shown?");
  ASSERT_TRUE(res && res->status == 200);
  std::string want;  // as the DOM serializes text
  for (char ch : events(res->body).back().second["text"].get<std::string>())
    want += ch == '<' ? "&lt;" : ch == '>' ? "&gt;" : ch == '&' ? "&amp;" : std::string(1, ch);

  const std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/?ask=what+is+shown%3F&media=1";
  const std::string dom_file = t.dir + "/chat_dom.html";
  const std::string cmd = "timeout 120 " + chromium + " --headless --disable-gpu --no-sandbox --user-data-dir=" +
                          q(t.dir + "/chromium-profile") + " --virtual-time-budget=15000 --dump-dom " + q(url) + " >" +
                          q(dom_file) + " 2>" + q(t.dir + "/chromium.log");
  const int st = std::system(cmd.c_str());
  const std::string dom = read_file(dom_file);
  ASSERT_NE(dom.find("</html>"), std::string::npos) << "no DOM; exit " << st << "\n" << read_file(t.dir + "/chromium.log");
  const std::string answer = "<p id=\"answer\" class=\"answer\" data-state=\"done\">" + want + "</p>";
  EXPECT_NE(dom.find(answer), std::string::npos) << "expected " << answer << " in:\n" << dom;
  EXPECT_NE(dom.find("<section id=\"chat\" class=\"chat\">"), std::string::npos) << "the chat box is shown";
}
