// Time series loading: CSV, .npy and inline JSON arrays -> [T, C] float32.
#include "braid/data/series.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>
#include <vector>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/data/npy.h"

namespace braid::data {
namespace {

constexpr double kFloatMax = std::numeric_limits<float>::max();

// "" when v is a finite float32-representable value, else what is wrong with it.
const char* bad_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return "Inf";
  if (std::abs(v) > kFloatMax) return "outside the float32 range";
  return "";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Parse a whole cell as a number (NaN/Inf spellings included, so they can be reported as such).
bool parse_number(std::string_view cell, double& out) {
  cell = trim(cell);
  if (!cell.empty() && cell.front() == '+') cell.remove_prefix(1);
  if (cell.empty()) return false;
  auto [ptr, ec] = std::from_chars(cell.data(), cell.data() + cell.size(), out);
  if (ec == std::errc::result_out_of_range) {  // e.g. 1e999: report it as out of range, not as text
    out = std::numeric_limits<double>::infinity();
    return ptr == cell.data() + cell.size();
  }
  return ec == std::errc() && ptr == cell.data() + cell.size();
}

std::vector<std::string_view> split_commas(std::string_view line) {
  std::vector<std::string_view> cells;
  size_t start = 0;
  while (true) {
    const size_t comma = line.find(',', start);
    cells.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return cells;
}

std::string shorten(std::string_view s) {
  std::string out(s.substr(0, 40));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  if (s.size() > 40) out += "...";
  return out;
}

torch::Tensor load_csv(const std::string& path) {
  const std::string text = read_text_file(path);
  std::vector<float> values;
  int64_t cols = -1, rows = 0;
  bool first = true;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (trim(line).empty()) continue;
    auto cells = split_commas(line);
    if (first) {
      first = false;
      double v;
      bool has_text = false;  // a non-empty cell that is not a number; "1,,3" is a data row with a hole
      for (auto c : cells) has_text = has_text || (!trim(c).empty() && !parse_number(c, v));
      if (has_text) {  // header line: remember its width, the data must match it
        cols = static_cast<int64_t>(cells.size());
        continue;
      }
    }
    if (cols < 0) cols = static_cast<int64_t>(cells.size());
    BRAID_INPUT_CHECK(int64_t(cells.size()) == cols, "{}:{}: {} columns; expected {} like the first line", path,
                      line_no, cells.size(), cols);
    for (size_t c = 0; c < cells.size(); ++c) {
      double v;
      if (!parse_number(cells[c], v)) {
        if (trim(cells[c]).empty()) input_error("{}:{}: column {} is empty; expected finite numbers", path, line_no, c + 1);
        input_error("{}:{}: column {} is not a number ('{}'); expected finite numbers", path, line_no, c + 1,
                    shorten(trim(cells[c])));
      }
      const char* bad = bad_value(v);
      BRAID_INPUT_CHECK(!*bad, "{}:{}: column {} is {}; expected finite numbers", path, line_no, c + 1, bad);
      values.push_back(static_cast<float>(v));
    }
    ++rows;
  }
  BRAID_INPUT_CHECK(rows > 0, "{}: no data rows; expected at least one line of comma-separated numbers", path);
  return torch::from_blob(values.data(), {rows, cols}, torch::kFloat32).clone();
}

torch::Tensor load_npy_series(const std::string& path) {
  torch::Tensor a = read_npy(path);
  BRAID_INPUT_CHECK(a.dim() == 1 || a.dim() == 2, "{}: array of shape [{}]; expected a 1-D [T] or 2-D [T, C] series",
                    path, fmt::join(a.sizes(), ", "));
  if (a.dim() == 1) a = a.unsqueeze(1);  // [T] -> [T, 1]
  BRAID_INPUT_CHECK(a.size(0) > 0 && a.size(1) > 0, "{}: empty series of shape [{}, {}]; expected T >= 1 and C >= 1",
                    path, a.size(0), a.size(1));
  if (a.is_floating_point()) {
    auto d = a.to(torch::kFloat64).contiguous();
    const double* p = d.data_ptr<double>();
    const int64_t C = d.size(1);
    for (int64_t i = 0; i < d.numel(); ++i) {
      const char* bad = bad_value(p[i]);
      BRAID_INPUT_CHECK(!*bad, "{}: row {}, column {} is {}; expected finite numbers", path, i / C + 1, i % C + 1, bad);
    }
  }
  return a.to(torch::kFloat32).contiguous();
}

}  // namespace

torch::Tensor load_series_file(const std::string& path) {
  auto ends_with = [&](const char* ext) {
    const std::string e(ext);
    if (path.size() < e.size()) return false;
    for (size_t i = 0; i < e.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(path[path.size() - e.size() + i])) != e[i]) return false;
    return true;
  };
  if (ends_with(".npy")) return load_npy_series(path);
  return load_csv(path);
}

torch::Tensor series_from_json(const nlohmann::json& j, const std::string& where) {
  BRAID_INPUT_CHECK(j.is_array(), "{}: expected an array of numbers or an array of rows, got {}", where, j.type_name());
  BRAID_INPUT_CHECK(!j.empty(), "{}: empty series; expected at least one time step", where);
  auto number = [&](const nlohmann::json& v, size_t row, size_t col, bool flat) -> float {
    if (!v.is_number()) {
      if (flat) input_error("{}: element {} is {}; expected a finite number", where, row + 1, v.type_name());
      input_error("{}: row {}, column {} is {}; expected a finite number", where, row + 1, col + 1, v.type_name());
    }
    const double d = v.get<double>();
    const char* bad = bad_value(d);
    if (*bad) {
      if (flat) input_error("{}: element {} is {}; expected a finite number", where, row + 1, bad);
      input_error("{}: row {}, column {} is {}; expected a finite number", where, row + 1, col + 1, bad);
    }
    return static_cast<float>(d);
  };
  const int64_t T = static_cast<int64_t>(j.size());
  std::vector<float> values;
  if (!j.front().is_array()) {  // flat [T] -> [T, 1]
    values.reserve(size_t(T));
    for (size_t i = 0; i < j.size(); ++i) {
      BRAID_INPUT_CHECK(!j[i].is_array(), "{}: element {} is an array but element 1 is not; expected all numbers or all rows",
                        where, i + 1);
      values.push_back(number(j[i], i, 0, true));
    }
    return torch::from_blob(values.data(), {T, 1}, torch::kFloat32).clone();
  }
  const size_t C = j.front().size();
  BRAID_INPUT_CHECK(C > 0, "{}: row 1 is empty; expected at least one channel", where);
  values.reserve(size_t(T) * C);
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& row = j[i];
    BRAID_INPUT_CHECK(row.is_array(), "{}: row {} is {}; expected an array of {} numbers like row 1", where, i + 1,
                      row.type_name(), C);
    BRAID_INPUT_CHECK(row.size() == C, "{}: row {} has {} values; expected {} like row 1", where, i + 1, row.size(), C);
    for (size_t c = 0; c < C; ++c) values.push_back(number(row[c], i, c, false));
  }
  return torch::from_blob(values.data(), {T, int64_t(C)}, torch::kFloat32).clone();
}

}  // namespace braid::data
