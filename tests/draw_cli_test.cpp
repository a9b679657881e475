// The user-facing side of text -> image (issue 17): the PNG helpers (data/image.h encode_png, image_grid),
// `braid generate RUN --text T --out F.png`, `braid tokenize-image` both ways, and `braid serve RUN` (no
// index) answering /api/generate with images, on a tiny vq_image run and an early_fusion run trained from it.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>

#include "braid/core/error.h"
#include "braid/data/image.h"
#include "draw_fixture.h"
#include "serve_process.h"
#include "test_util.h"

using namespace braid::test;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// [3, H, W] float in [0, 1] of an 8-bit RGB image.
torch::Tensor to_chw(const braid::data::RawImage& img) {
  auto t = torch::from_blob(const_cast<uint8_t*>(img.rgb.data()), {img.height, img.width, 3}, torch::kUInt8);
  return t.permute({2, 0, 1}).to(torch::kFloat32).div(255.0f).contiguous();
}

braid::data::RawImage decode_png(const std::string& bytes, const std::string& name) {
  return braid::data::decode_image_memory(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

}  // namespace

TEST(DrawCli, EncodePngDecodesToTheSamePixels) {
  // values on the 8-bit grid come back exactly; outside [0, 1] clamps; NaN becomes 0
  auto x = torch::randint(0, 256, {3, 5, 7}, torch::kLong).to(torch::kFloat32).div(255.0f);
  const std::string png = braid::data::encode_png(x);
  ASSERT_GT(png.size(), 8u);
  EXPECT_EQ(png.substr(1, 3), "PNG");
  auto img = decode_png(png, "encoded.png");
  EXPECT_EQ(img.width, 7);
  EXPECT_EQ(img.height, 5);
  EXPECT_TRUE(AllClose(to_chw(img), x, 1e-6, "decoded PNG"));

  auto y = torch::zeros({3, 2, 2});
  y[0][0][0] = -3.0f;
  y[1][0][1] = 7.0f;
  y[2][1][0] = std::nanf("");
  y[0][1][1] = 0.5f;  // 127.5 rounds to 128
  auto back = decode_png(braid::data::encode_png(y.to(torch::kFloat64)), "clamped.png");
  EXPECT_EQ(back.rgb[0], 0);                   // (0, 0) red
  EXPECT_EQ(back.rgb[(0 * 2 + 1) * 3 + 1], 255);  // (0, 1) green
  EXPECT_EQ(back.rgb[(1 * 2 + 0) * 3 + 2], 0);    // (1, 0) blue, NaN
  EXPECT_EQ(back.rgb[(1 * 2 + 1) * 3 + 0], 128);  // (1, 1) red
}

TEST(DrawCli, ImageGridLaysOutCellsWithWhiteGaps) {
  // three 2x3 images of constant grey levels 0.1, 0.2, 0.3 in 2 columns with a 1-pixel gap
  auto imgs = torch::empty({3, 3, 2, 3});
  for (int i = 0; i < 3; ++i) imgs[i].fill_(0.1 * (i + 1));
  auto g = braid::data::image_grid(imgs, 2, 1);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{3, 2 * 2 + 1, 2 * 3 + 1}));
  auto cell = [&](int64_t r, int64_t c) { return g.slice(1, r * 3, r * 3 + 2).slice(2, c * 4, c * 4 + 3); };
  EXPECT_TRUE(AllClose(cell(0, 0), imgs[0], 0, "cell (0, 0)"));
  EXPECT_TRUE(AllClose(cell(0, 1), imgs[1], 0, "cell (0, 1)"));
  EXPECT_TRUE(AllClose(cell(1, 0), imgs[2], 0, "cell (1, 0)"));
  EXPECT_TRUE(AllClose(cell(1, 1), torch::ones({3, 2, 3}), 0, "the unused cell is white"));
  EXPECT_TRUE(AllClose(g.select(1, 2), torch::ones({3, 7}), 0, "the gap row is white"));
  EXPECT_TRUE(AllClose(g.select(2, 3), torch::ones({3, 5}), 0, "the gap column is white"));

  // more columns than images: one row; a single image: itself
  EXPECT_EQ(braid::data::image_grid(imgs, 8, 2).sizes(), (std::vector<int64_t>{3, 2, 3 * 3 + 2 * 2}));
  EXPECT_TRUE(AllClose(braid::data::image_grid(imgs.slice(0, 0, 1), 8, 2), imgs[0], 0, "one image"));
  // 10 images in 8 columns: 2 rows
  EXPECT_EQ(braid::data::image_grid(torch::zeros({10, 3, 4, 4}), 8, 2).sizes(),
            (std::vector<int64_t>{3, 2 * 4 + 2, 8 * 4 + 7 * 2}));
}

TEST(DrawCli, HelpersRejectBadShapes) {
  EXPECT_THROW(braid::data::encode_png(torch::zeros({1, 4, 4})), braid::InputError);
  EXPECT_THROW(braid::data::encode_png(torch::zeros({3, 0, 4})), braid::InputError);
  EXPECT_THROW(braid::data::encode_png(torch::zeros({2, 3, 4, 4})), braid::InputError);
  EXPECT_THROW(braid::data::encode_png(torch::zeros({3, 4, 4}, torch::kLong)), braid::InputError);
  EXPECT_THROW(braid::data::image_grid(torch::zeros({3, 4, 4}), 2, 2), braid::InputError);
  EXPECT_THROW(braid::data::image_grid(torch::zeros({0, 3, 4, 4}), 2, 2), braid::InputError);
  EXPECT_THROW(braid::data::image_grid(torch::zeros({2, 1, 4, 4}), 2, 2), braid::InputError);
  EXPECT_THROW(braid::data::image_grid(torch::zeros({2, 3, 4, 4}), 0, 2), braid::InputError);
  EXPECT_THROW(braid::data::image_grid(torch::zeros({2, 3, 4, 4}), 2, -1), braid::InputError);
}

namespace {

// The tiny recipes (draw_fixture.h): 16x16 images -> 4x4 codes of a 32-entry codebook.
constexpr int64_t kSide = 16, kGrid = 4, kCodes = 32;

struct DrawRuns {
  std::string dir, manifest, vq, t2i, image, why;
  bool ok = false;
};

// The tiny vq_image run and the early_fusion run trained from it (once per process).
const DrawRuns& draw_runs() {
  static DrawRuns t = [] {
    DrawRuns t;
    t.dir = temp_dir("draw_cli");
    t.manifest = make_toy_dataset(t.dir + "/data", ToyOptions{32, 2, true, false, true});
    write_file(t.dir + "/vq.yaml", kTinyVQRecipe);
    t.vq = t.dir + "/vq";
    auto r = run_braid("train " + q(t.dir + "/vq.yaml") + " --data " + q(t.manifest) + " --out " + q(t.vq));
    if (r.code != 0) return t.why = "vq train failed: " + r.err, t;
    write_file(t.dir + "/t2i.yaml", tiny_t2i_recipe(t.vq, "  cond_drop: 0.1\n  caption: 0.25\n"));
    t.t2i = t.dir + "/t2i";
    r = run_braid("train " + q(t.dir + "/t2i.yaml") + " --data " + q(t.manifest) + " --out " + q(t.t2i));
    if (r.code != 0) return t.why = "early_fusion train failed: " + r.err, t;
    for (const auto& e : fs::recursive_directory_iterator(t.dir + "/data"))
      if (e.path().extension() == ".png") {
        t.image = e.path().string();
        break;
      }
    if (t.image.empty()) return t.why = "no PNG in the toy data", t;
    t.ok = true;
    return t;
  }();
  return t;
}

// Runs braid and expects exit 2 with a one-line error on stderr containing every one of `want`.
void ExpectCliError(const std::string& args, const std::vector<std::string>& want) {
  auto r = run_braid(args);
  EXPECT_EQ(r.code, 2) << args << "\nstdout: " << r.out << "\nstderr: " << r.err;
  const auto line = r.err.substr(0, r.err.find('\n'));
  EXPECT_NE(line.find("braid: error: "), std::string::npos) << r.err;
  for (const auto& w : want) EXPECT_NE(line.find(w), std::string::npos) << "expected '" << w << "' in: " << r.err;
}

}  // namespace

TEST(DrawCli, GenerateOutWritesADecodablePngOfTheRightSize) {
  const auto& t = draw_runs();
  ASSERT_TRUE(t.ok) << t.why;
  TempDir tmp("draw_out");
  // one image: the run's image size
  const std::string one = tmp.file("sub/heart.png");  // a missing folder is made
  auto r = run_braid("generate " + q(t.t2i) + " --text " + q("red heart") + " --out " + q(one) +
                     " --guidance 3 --seed 1 --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find(one), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("16x16"), std::string::npos) << r.out;
  auto img = braid::data::decode_image_file(one);
  EXPECT_EQ(img.width, kSide);
  EXPECT_EQ(img.height, kSide);
  // the same seed draws the same image; another seed (sampling at temperature 1) another one
  const std::string again = tmp.file("again.png"), other = tmp.file("other.png");
  ASSERT_EQ(run_braid("generate " + q(t.t2i) + " --text " + q("red heart") + " --out " + q(again) +
                      " --guidance 3 --seed 1 --threads 1").code, 0);
  EXPECT_EQ(read_file(again), read_file(one));
  ASSERT_EQ(run_braid("generate " + q(t.t2i) + " --text " + q("red heart") + " --out " + q(other) +
                      " --guidance 3 --seed 2 --threads 1").code, 0);
  EXPECT_NE(read_file(other), read_file(one)) << "16 codes sampled at temperature 1 from 32: another seed, another image";

  // n = 10: one grid of 8 columns and 2 rows with 2-pixel white gaps; --json describes it
  const std::string grid = tmp.file("grid.png");
  r = run_braid("generate " + q(t.t2i) + " --text " + q("red heart") + " --out " + q(grid) +
                " --n 10 --seed 3 --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = last_json_line(r.out);
  const int64_t W = 8 * kSide + 7 * 2, H = 2 * kSide + 2;
  EXPECT_EQ(j["out"], grid);
  EXPECT_EQ(j["n"], 10);
  EXPECT_EQ(j["cols"], 8);
  EXPECT_EQ(j["width"], W);
  EXPECT_EQ(j["height"], H);
  EXPECT_EQ(j["temperature"], 1.0) << "drawing samples at temperature 1 unless told";
  EXPECT_GT(j["seconds"].get<double>(), 0.0);
  auto g = braid::data::decode_image_file(grid);
  ASSERT_EQ(g.width, W);
  ASSERT_EQ(g.height, H);
  auto chw = to_chw(g);
  EXPECT_TRUE(AllClose(chw.slice(2, kSide, kSide + 2), torch::ones({3, H, 2}), 0, "gap after column 0"));
  EXPECT_TRUE(AllClose(chw.slice(1, 2 * kSide + 2 - kSide, H).slice(2, 2 * (kSide + 2), W),
                       torch::ones({3, kSide, W - 2 * (kSide + 2)}), 0, "the unused cells of row 2"));
}

TEST(DrawCli, GenerateOutErrorsAreOneLine) {
  const auto& t = draw_runs();
  ASSERT_TRUE(t.ok) << t.why;
  TempDir tmp("draw_err");
  const std::string out = tmp.file("x.png");
  // a run that does not draw (the vq tokenizer: task align)
  ExpectCliError("generate " + q(t.vq) + " --text heart --out " + q(out), {"--out", "draws images"});
  // no --text
  ExpectCliError("generate " + q(t.t2i) + " --out " + q(out), {"--out", "--text"});
  // --text on a drawing run without --out
  ExpectCliError("generate " + q(t.t2i) + " --text heart", {"--out"});
  // --out under a regular file; --out a folder
  const std::string file = tmp.file("plain.txt", "not a folder");
  ExpectCliError("generate " + q(t.t2i) + " --text heart --out " + q(file + "/x.png"), {"--out", file});
  ExpectCliError("generate " + q(t.t2i) + " --text heart --out " + q(tmp.path.string()), {"--out", "folder"});
  // --n / --guidance only with --out
  ExpectCliError("generate " + q(t.t2i) + " --image " + q(t.image) + " --n 3", {"--n"});
  EXPECT_FALSE(fs::exists(out));
  // n out of range: CLI11's own error (exit 105, the hint)
  auto r = run_braid("generate " + q(t.t2i) + " --text heart --out " + q(out) + " --n 65");
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(fs::exists(out));
}

TEST(DrawCli, GenerateImageOnADrawingRunNamesIt) {
  const auto& t = draw_runs();
  ASSERT_TRUE(t.ok) << t.why;
  auto r = run_braid("generate " + q(t.t2i) + " --image " + q(t.image) + " --json --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = last_json_line(r.out);
  EXPECT_TRUE(j.contains("text"));
  EXPECT_GT(j["ids"].size(), 0u) << r.out;
}

TEST(DrawCli, TokenizeImageRoundTripOnBothRuns) {
  const auto& t = draw_runs();
  ASSERT_TRUE(t.ok) << t.why;
  TempDir tmp("draw_tok");
  for (const auto& run : {t.vq, t.t2i}) {
    const std::string codes = tmp.file("codes.json"), back = tmp.file("back.png");
    auto r = run_braid("tokenize-image " + q(run) + " " + q(t.image) + " --out " + q(codes) + " --threads 1");
    ASSERT_EQ(r.code, 0) << run << ": " << r.err;
    EXPECT_NE(r.out.find("4x4 codes"), std::string::npos) << r.out;
    auto j = json::parse(read_file(codes));
    EXPECT_EQ(j["run"], run);
    EXPECT_EQ(j["image"], t.image);
    EXPECT_EQ(j["grid"], json::array({kGrid, kGrid}));
    EXPECT_EQ(j["codebook"], kCodes);
    ASSERT_EQ(j["codes"].size(), size_t(kGrid));
    for (const auto& row : j["codes"]) {
      ASSERT_EQ(row.size(), size_t(kGrid));
      for (const auto& id : row) {
        EXPECT_GE(id.get<int64_t>(), 0);
        EXPECT_LT(id.get<int64_t>(), kCodes);
      }
    }
    r = run_braid("tokenize-image " + q(run) + " --decode " + q(codes) + " --out " + q(back) + " --json --threads 1");
    ASSERT_EQ(r.code, 0) << run << ": " << r.err;
    auto img = braid::data::decode_image_file(back);
    EXPECT_EQ(img.width, kSide);
    EXPECT_EQ(img.height, kSide);
    EXPECT_EQ(last_json_line(r.out)["width"], kSide);
    // decoding is a function of the codes: the same codes, the same PNG; a flat list is read too
    json flat = j;
    flat["codes"] = json::array();
    for (const auto& row : j["codes"])
      for (const auto& id : row) flat["codes"].push_back(id);
    const std::string flat_file = tmp.file("flat.json", flat.dump()), back2 = tmp.file("back2.png");
    ASSERT_EQ(run_braid("tokenize-image " + q(run) + " --decode " + q(flat_file) + " --out " + q(back2)).code, 0);
    EXPECT_EQ(read_file(back2), read_file(back));
    // different codes decode to a different image
    json changed = j;
    changed["codes"][0][0] = (j["codes"][0][0].get<int64_t>() + 1) % kCodes;
    changed["codes"][2][1] = (j["codes"][2][1].get<int64_t>() + 7) % kCodes;
    const std::string changed_file = tmp.file("changed.json", changed.dump()), back3 = tmp.file("back3.png");
    ASSERT_EQ(run_braid("tokenize-image " + q(run) + " --decode " + q(changed_file) + " --out " + q(back3)).code, 0);
    EXPECT_NE(read_file(back3), read_file(back));
  }
}

TEST(DrawCli, TokenizeImageRejectsBadCodesFiles) {
  const auto& t = draw_runs();
  ASSERT_TRUE(t.ok) << t.why;
  TempDir tmp("draw_badcodes");
  const std::string out = tmp.file("back.png");
  auto row = [](int64_t v) { return json::array({v, v, v, v}); };
  json good = {{"grid", {kGrid, kGrid}}, {"codes", {row(1), row(2), row(3), row(4)}}};
  auto bad = [&](const std::string& name, const std::string& text, const std::string& also) {
    const std::string f = tmp.file(name, text);
    ExpectCliError("tokenize-image " + q(t.vq) + " --decode " + q(f) + " --out " + q(out), {f, also});
  };
  bad("notjson.json", "{\"codes\": [[1, 2", "not valid JSON");
  bad("nocodes.json", "{\"grid\": [4, 4]}", "'codes'");
  bad("short.json", json{{"codes", {row(1), row(2), row(3)}}}.dump(), "12 codes");
  bad("long.json", json{{"codes", {row(1), row(2), row(3), row(4), row(5)}}}.dump(), "more than 16");
  bad("ragged.json", json{{"codes", {row(1), row(2), row(3), json::array({1, 2, 3})}}}.dump(), "row 3");
  bad("range.json", json{{"codes", {row(1), row(2), row(3), row(kCodes)}}}.dump(), "out of range");
  bad("negative.json", json{{"codes", {row(1), row(-1), row(3), row(4)}}}.dump(), "out of range");
  bad("float.json", json{{"codes", {row(1), row(2), row(3), json::array({1, 2.5, 3, 4})}}}.dump(), "integer");
  json wrong_grid = good;
  wrong_grid["grid"] = {2, 8};
  bad("grid.json", wrong_grid.dump(), "'grid'");
  EXPECT_FALSE(fs::exists(out));
  // the good file decodes
  const std::string f = tmp.file("good.json", good.dump());
  auto r = run_braid("tokenize-image " + q(t.vq) + " --decode " + q(f) + " --out " + q(out));
  EXPECT_EQ(r.code, 0) << r.err;
  // a missing image
  ExpectCliError("tokenize-image " + q(t.vq) + " " + q(tmp.file("missing.png")) + " --out " + q(tmp.file("c.json")),
                 {"missing.png"});
}

namespace {

// `braid serve RUN --port 0` (no index) in a child process, its log beside the runs; SIGTERM on destruction.
struct DrawServe : ServeProcess {
  explicit DrawServe(const std::string& run)
      : ServeProcess(q(run) + " --port 0 --threads 1", fresh_serve_log(draw_runs().dir)) {}
};

std::string unbase64(const std::string& s) {
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '+' ? 62 : c == '/' ? 63 : -1;
    if (v < 0) break;  // '=' padding
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += char((acc >> bits) & 0xFF);
    }
  }
  return out;
}

httplib::Result post_json(httplib::Client& c, const json& body) {
  return c.Post("/api/generate", body.dump(), "application/json");
}

}  // namespace

TEST(DrawServe, GenerateReturnsImagesOfThePrompt) {
  const auto& t = draw_runs();
  ASSERT_TRUE(t.ok) << t.why;
  DrawServe srv(t.t2i);
  ASSERT_GT(srv.port(), 0) << srv.log();
  httplib::Client c("127.0.0.1", srv.port());
  c.set_read_timeout(120, 0);
  auto health = c.Get("/api/health");
  ASSERT_TRUE(health && health->status == 200);
  auto h = json::parse(health->body);
  EXPECT_TRUE(h["draws"].get<bool>());
  EXPECT_TRUE(h["generates"].get<bool>());
  EXPECT_FALSE(h["searches"].get<bool>());
  EXPECT_TRUE(h["index"].is_null());
  EXPECT_EQ(h["run"], t.t2i);

  auto res = post_json(c, {{"text", "red heart"}, {"n", 3}, {"guidance", 3}, {"seed", 1}, {"temperature", 1}});
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
  auto j = json::parse(res->body);
  ASSERT_EQ(j["images"].size(), 3u) << res->body;
  EXPECT_EQ(j["width"], kSide);
  EXPECT_EQ(j["height"], kSide);
  EXPECT_GE(j["seconds"].get<double>(), 0.0);
  const std::string prefix = "data:image/png;base64,";
  for (const auto& u : j["images"]) {
    const auto url = u.get<std::string>();
    ASSERT_EQ(url.rfind(prefix, 0), 0u) << url.substr(0, 40);
    auto img = decode_png(unbase64(url.substr(prefix.size())), "served image");
    EXPECT_EQ(img.width, kSide);
    EXPECT_EQ(img.height, kSide);
  }
  // the same request and seed as `braid generate --n 1 --threads 1`: the same PNG
  auto one = post_json(c, {{"text", "red heart"}, {"n", 1}, {"guidance", 3}, {"seed", 5}});
  ASSERT_TRUE(one && one->status == 200) << (one ? one->body : "no answer");
  TempDir tmp("draw_serve");
  const std::string cli = tmp.file("cli.png");
  auto r = run_braid("generate " + q(t.t2i) + " --text " + q("red heart") + " --out " + q(cli) +
                     " --guidance 3 --seed 5 --threads 1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(unbase64(json::parse(one->body)["images"][0].get<std::string>().substr(prefix.size())), read_file(cli))
      << "the server and the CLI draw the same image for the same request";

  // bad requests: 400 with a JSON error naming the field
  auto expect_400 = [&](const json& body, const std::string& also) {
    auto b = post_json(c, body);
    ASSERT_TRUE(b);
    EXPECT_EQ(b->status, 400) << body.dump() << " -> " << b->body;
    auto e = json::parse(b->body);
    ASSERT_TRUE(e.contains("error")) << b->body;
    EXPECT_NE(e["error"].get<std::string>().find(also), std::string::npos) << b->body;
  };
  expect_400({{"text", "red heart"}, {"n", 0}}, "n = 0");
  expect_400({{"text", "red heart"}, {"n", 17}}, "1..16");
  expect_400({{"text", "red heart"}, {"n", "3"}}, "'n'");
  expect_400({{"text", "red heart"}, {"guidance", -1}}, "guidance");
  expect_400({{"text", "red heart"}, {"temperature", 1000}}, "temperature");
  expect_400({{"text", "red heart"}, {"seed", -3}}, "seed");
  expect_400({{"text", ""}}, "empty");
  expect_400({{"prompt", "red heart"}}, "'text'");
  expect_400({{"text", "red heart"}, {"colour", "red"}}, "colour");
  auto notjson = c.Post("/api/generate", "{nope", "application/json");
  ASSERT_TRUE(notjson);
  EXPECT_EQ(notjson->status, 400);
  // no index: no search
  auto search = c.Post("/api/search", json{{"text", "heart"}}.dump(), "application/json");
  ASSERT_TRUE(search);
  EXPECT_EQ(search->status, 404);
  EXPECT_NE(search->body.find("no index"), std::string::npos) << search->body;
  // an uploaded image is named (server-sent events, as for the MLLM)
  httplib::MultipartFormDataItems form{{"image", read_file(t.image), "asked.png", "image/png"}};
  auto named = c.Post("/api/generate", form);
  ASSERT_TRUE(named);
  ASSERT_EQ(named->status, 200) << named->body;
  EXPECT_NE(named->body.find("event: done"), std::string::npos) << named->body;
  // the page has the drawing form
  auto page = c.Get("/");
  ASSERT_TRUE(page && page->status == 200);
  EXPECT_NE(page->body.find("id=\"drawform\""), std::string::npos);
  auto after = json::parse(c.Get("/api/health")->body);
  EXPECT_EQ(after["drawings"], 2);
}

TEST(DrawServe, BrowserPageShowsTheGridOfDrawnImages) {
  std::string chromium;
  for (const char* p : {"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"})
    if (fs::exists(p)) chromium = p;
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (apt-get install chromium); browser test skipped";
  const auto& t = draw_runs();
  ASSERT_TRUE(t.ok) << t.why;
  DrawServe srv(t.t2i);
  ASSERT_GT(srv.port(), 0) << srv.log();
  const std::string url = "http://127.0.0.1:" + std::to_string(srv.port()) + "/?draw=red+heart";
  TempDir tmp("draw_browser");
  const std::string dom_file = tmp.file("dom.html");
  const std::string cmd = "timeout 120 " + chromium + " --headless --disable-gpu --no-sandbox --user-data-dir=" +
                          q(tmp.file("profile")) + " --virtual-time-budget=20000 --dump-dom " + q(url) + " >" +
                          q(dom_file) + " 2>" + q(tmp.file("chromium.log"));
  const int st = std::system(cmd.c_str());
  const std::string dom = read_file(dom_file);
  ASSERT_NE(dom.find("</html>"), std::string::npos) << "no DOM; exit " << st << "\n" << read_file(tmp.file("chromium.log"));
  EXPECT_NE(dom.find("<section id=\"draw\" class=\"chat\">"), std::string::npos) << "the drawing form is shown:\n" << dom;
  EXPECT_NE(dom.find("data-state=\"done\""), std::string::npos) << dom;
  size_t imgs = 0;
  for (size_t at = dom.find("class=\"drawn\""); at != std::string::npos; at = dom.find("class=\"drawn\"", at + 1)) ++imgs;
  EXPECT_EQ(imgs, 8u) << "the page asks for 8 images by default:\n" << dom;
  EXPECT_NE(dom.find("src=\"data:image/png;base64,"), std::string::npos);
  EXPECT_NE(dom.find("<section id=\"search\" hidden=\"\">"), std::string::npos) << "no index: no search box";
}
