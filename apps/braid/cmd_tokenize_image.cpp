// braid tokenize-image RUN in.png --out codes.json          an image -> its code ids in the run's codebook
// braid tokenize-image RUN --decode codes.json --out back.png   code ids -> the decoder's image
//
// Runs whose model has a discrete image codebook (capabilities().codes > 0: vq_image, early_fusion); decoding
// also needs the model's decode_codes (an image tokenizer). The JSON is
//   {"run": RUN, "image": "in.png", "grid": [h, w], "codebook": K, "codes": [[h rows of w ids]]}
// (`codes` may also be one flat list; "grid", when present, must agree with it).
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <set>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/runtime.h"
#include "braid/data/image.h"
#include "braid/run/query.h"
#include "braid/run/run_dir.h"
#include "commands.h"

namespace braid::cli {

namespace {

struct TokenizeImageArgs {
  std::string run, image, decode, out, weights = "model", device;
  int threads = 0;
  bool json = false;
};

// The [h, w] layout of T codes: the square grid when T is a square (8x8 over 32x32 images), else one row.
std::pair<int64_t, int64_t> grid_of(int64_t T) {
  auto h = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(T))));
  if (h > 0 && h * h == T) return {h, h};
  return {1, T};
}

// Code ids [1, T] (CPU int64) of one preprocessed image [3, S, S].
torch::Tensor image_codes(run::Pipeline& p, const torch::Tensor& chw) {
  auto b = run::query_batch("image", {chw});
  auto ids = p.model->codes("image", b.mods.at("image").to(p.device));
  TORCH_CHECK(ids.dim() == 2 && ids.size(0) == 1 && ids.size(1) > 0, "codes(\"image\") returned shape ", ids.sizes(),
              "; expected [1, T]");
  return ids.to(torch::kCPU, torch::kLong).contiguous();
}

// The code ids of a codes JSON file, checked against the run: `expected` ids each in [0, codebook).
torch::Tensor read_codes(const std::string& path, int64_t expected, int64_t codebook) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    input_error("{}: not valid JSON ({}); expected {{\"grid\": [h, w], \"codes\": [[...]]}} from braid tokenize-image",
                path, std::string(e.what()).substr(0, 120));
  }
  BRAID_INPUT_CHECK(j.is_object() && j.contains("codes") && j["codes"].is_array(),
                    "{}: expected a JSON object with an array 'codes' (from braid tokenize-image)", path);
  std::vector<int64_t> ids;
  int64_t rows = 0, width = -1;
  auto take = [&](const nlohmann::json& v, int64_t row, int64_t col) {
    BRAID_INPUT_CHECK(v.is_number_integer(), "{}: codes[{}]{}: expected an integer code id, got {}", path, row,
                      col >= 0 ? fmt::format("[{}]", col) : std::string(), v.dump().substr(0, 32));
    const int64_t id = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX) ? -1 : v.get<int64_t>();
    BRAID_INPUT_CHECK(id >= 0 && id < codebook, "{}: code id {} out of range; this run's codebook has ids 0..{}",
                      path, v.dump().substr(0, 32), codebook - 1);
    BRAID_INPUT_CHECK(ids.size() < static_cast<size_t>(expected), "{}: more than {} codes; this run's images have {}",
                      path, expected, expected);
    ids.push_back(id);
  };
  const auto& codes = j["codes"];
  for (size_t r = 0; r < codes.size(); ++r) {
    if (codes[r].is_array()) {
      const auto n = static_cast<int64_t>(codes[r].size());
      BRAID_INPUT_CHECK(width < 0 || n == width, "{}: codes row {} has {} ids, row 0 has {}; expected equal rows",
                        path, r, n, width);
      width = n;
      ++rows;
      for (size_t c = 0; c < codes[r].size(); ++c) take(codes[r][c], static_cast<int64_t>(r), static_cast<int64_t>(c));
    } else {
      BRAID_INPUT_CHECK(rows == 0, "{}: codes mixes rows (arrays) and single ids", path);
      take(codes[r], static_cast<int64_t>(r), -1);
    }
  }
  if (rows > 0) BRAID_INPUT_CHECK(static_cast<size_t>(rows) == codes.size(), "{}: codes mixes rows and single ids", path);
  const auto [eh, ew] = grid_of(expected);
  BRAID_INPUT_CHECK(static_cast<int64_t>(ids.size()) == expected,
                    "{}: {} codes; this run's images have {} ({}x{})", path, ids.size(), expected, eh, ew);
  if (j.contains("grid")) {
    const auto& g = j["grid"];
    BRAID_INPUT_CHECK(g.is_array() && g.size() == 2 && g[0].is_number_integer() && g[1].is_number_integer(),
                      "{}: 'grid' must be [h, w], got {}", path, g.dump().substr(0, 32));
    const int64_t h = g[0].get<int64_t>(), w = g[1].get<int64_t>();
    BRAID_INPUT_CHECK(h > 0 && w > 0 && h * w == expected && (rows == 0 || (rows == h && width == w)),
                      "{}: 'grid' [{}, {}] does not match the codes ({} in {} rows) or this run's {}x{}", path, h, w,
                      ids.size(), rows > 0 ? rows : 1, eh, ew);
  }
  return torch::tensor(ids, torch::kLong).view({1, expected});
}

}  // namespace

void add_tokenize_image_command(CLI::App& app, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<TokenizeImageArgs>();
  auto* c = app.add_subcommand("tokenize-image", "an image to its discrete codes (JSON) with an image tokenizer run "
                                                 "(vq_image, early_fusion), or codes back to an image (--decode)");
  c->add_option("run", a->run, "run directory of a model with an image codebook")->required();
  auto* im = c->add_option("image", a->image, "image file to encode (PNG, JPEG, BMP)");
  auto* dec = c->add_option("--decode", a->decode, "codes JSON (from tokenize-image) to decode into --out PNG");
  im->excludes(dec);
  c->add_option("--out", a->out, "codes JSON (encoding) or PNG file (--decode)")->required();
  c->add_option("--weights", a->weights, run::weights_help())->capture_default_str();
  c->add_option("--device", a->device, "cpu, cuda or cuda:N (default: the run's device)");
  c->add_option("--threads", a->threads, "intra-op threads (0 = all cores)")->capture_default_str();
  c->add_flag("--json", a->json, "print one JSON object (out, grid, codes or width/height, seconds) instead of a line");
  out.emplace_back(c, [a] {
    BRAID_INPUT_CHECK(!a->image.empty() || !a->decode.empty(),
                      "tokenize-image: give an image to encode or --decode CODES.json");
    configure_threads(a->threads);
    check_output_file(a->out, "--out");
    const auto t0 = std::chrono::steady_clock::now();
    auto p = run::open_run(a->run, a->weights, a->device);
    p.model->eval();
    torch::NoGradGuard ng;
    const auto caps = p.model->capabilities();
    BRAID_INPUT_CHECK(caps.codes > 0 && p.pre && p.pre->options().image.size > 0,
                      "{}: the model has no image codebook (tokenize-image needs a run of vq_image or early_fusion)",
                      a->run);
    const int64_t S = p.pre->options().image.size;
    if (a->decode.empty()) {
      const auto x = run::preprocess_query(*p.pre, run::query_from_file("image", a->image));  // [3, S, S]
      const auto ids = image_codes(p, x);
      const int64_t T = ids.size(1);
      const auto [h, w] = grid_of(T);
      nlohmann::json rows = nlohmann::json::array();
      const int64_t* d = ids.data_ptr<int64_t>();
      for (int64_t r = 0; r < h; ++r) rows.push_back(std::vector<int64_t>(d + r * w, d + (r + 1) * w));
      const nlohmann::json doc = {{"run", a->run}, {"image", a->image}, {"grid", {h, w}},
                                  {"codebook", caps.codes}, {"codes", rows}};
      write_output_file(a->out, doc.dump() + "\n", "--out");
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const int64_t distinct = static_cast<int64_t>(std::set<int64_t>(d, d + T).size());
      if (a->json)
        fmt::print("{}\n", nlohmann::json{{"out", a->out}, {"image", a->image}, {"grid", {h, w}}, {"codes", T},
                                          {"distinct", distinct}, {"seconds", secs}}
                               .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      else
        fmt::print("{}: {}x{} codes ({} distinct of {}) of {} in {:.2f} s\n", a->out, h, w, distinct, caps.codes,
                   a->image, secs);
      return 0;
    }
    // the code count of this run's images: that of any image of its input size
    const int64_t T = image_codes(p, torch::zeros({3, S, S})).size(1);
    const auto ids = read_codes(a->decode, T, caps.codes);
    auto img = p.model->decode_codes("image", ids.to(p.device));  // [1, 3, H, W] in [0, 1]
    TORCH_CHECK(img.dim() == 4 && img.size(0) == 1 && img.size(1) == 3, "decode_codes returned shape ", img.sizes(),
                "; expected [1, 3, H, W]");
    write_output_file(a->out, data::encode_png(img[0]), "--out");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto [h, w] = grid_of(T);
    if (a->json)
      fmt::print("{}\n", nlohmann::json{{"out", a->out}, {"codes_file", a->decode}, {"grid", {h, w}},
                                        {"width", img.size(3)}, {"height", img.size(2)}, {"seconds", secs}}
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    else
      fmt::print("{}: {}x{} PNG decoded from {}x{} codes of {} in {:.2f} s\n", a->out, img.size(3), img.size(2), h, w,
                 a->decode, secs);
    return 0;
  });
}

}  // namespace braid::cli
