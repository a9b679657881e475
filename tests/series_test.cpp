// Time series (CSV / .npy / JSON) and the .npy reader/writer, against goldens from scripts/make_goldens.py.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <vector>

#include "braid/core/error.h"
#include "braid/data/npy.h"
#include "braid/data/series.h"
#include "test_util.h"
#include "braid/core/fs.h"

namespace {

namespace bd = braid::data;
using braid::test::AllClose;
using braid::test::broken;
using braid::test::ExpectInputError;
using braid::test::golden;
using json = nlohmann::json;



using braid::test::TempDir;

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}

// ---------------------------------------------------------------- npy

TEST(Npy, ReadsEveryDtype) {
  auto u1 = bd::read_npy(golden("npy_u1.npy"));
  EXPECT_EQ(u1.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(u1.equal(torch::arange(24, torch::kUInt8).view({2, 3, 4})));
  auto b1 = bd::read_npy(golden("npy_b1.npy"));
  EXPECT_EQ(b1.scalar_type(), torch::kBool);
  EXPECT_TRUE(b1.equal(torch::tensor({true, false, true, true})));
  auto i2 = bd::read_npy(golden("npy_i2.npy"));
  EXPECT_EQ(i2.scalar_type(), torch::kInt16);
  EXPECT_TRUE(i2.equal(torch::tensor({-32768, 0, 1, 32767}, torch::kInt16).view({2, 2})));
  auto i8 = bd::read_npy(golden("npy_i8.npy"));
  EXPECT_EQ(i8.scalar_type(), torch::kInt64);
  EXPECT_TRUE(i8.equal(torch::tensor({-(int64_t(1) << 40), int64_t(0), (int64_t(1) << 40) + 1})));
  auto i4 = bd::read_npy(golden("series_i4.npy"));
  EXPECT_EQ(i4.scalar_type(), torch::kInt32);
  EXPECT_TRUE(i4.equal(torch::arange(-6, 6, torch::kInt32).view({4, 3})));
  auto f8 = bd::read_npy(golden("series_1d_f8.npy"));
  EXPECT_EQ(f8.scalar_type(), torch::kFloat64);
  EXPECT_TRUE(AllClose(f8, torch::linspace(-2.0, 2.0, 15, torch::kFloat64), 1e-15, "linspace"));
  auto scalar = bd::read_npy(golden("npy_scalar_f8.npy"));
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<double>(), 3.25);
  auto f4 = bd::read_npy(golden("series.npy"));
  EXPECT_EQ(f4.scalar_type(), torch::kFloat32);
  EXPECT_EQ(f4.sizes(), torch::IntArrayRef({20, 3}));
  EXPECT_EQ(f4[0][1].item<float>(), -1.5f);
}

TEST(Npy, WriteIsByteIdenticalToNumpySave) {
  TempDir tmp;
  for (const char* name : {"series.npy", "series_1d_f8.npy", "series_i4.npy", "npy_u1.npy", "npy_b1.npy",
                           "npy_i2.npy", "npy_i8.npy", "npy_scalar_f8.npy", "image_rgba.npy", "mono16k_samples.npy"}) {
    const std::string out = tmp.file(name);
    bd::write_npy(out, bd::read_npy(golden(name)));
    EXPECT_EQ(read_all(out), read_all(golden(name))) << name << " differs from numpy's np.save output";
  }
}

TEST(Npy, RoundTripShapes) {
  TempDir tmp;
  torch::manual_seed(1);
  std::vector<torch::Tensor> ts = {torch::randn({3, 4, 5}), torch::randn({7}, torch::kFloat64),
                                   torch::empty({0, 3}), torch::randint(-100, 100, {2, 2}, torch::kInt64),
                                   torch::randn({4, 6}).t()};  // non-contiguous input
  for (size_t i = 0; i < ts.size(); ++i) {
    const std::string p = tmp.file("t" + std::to_string(i) + ".npy");
    bd::write_npy(p, ts[i]);
    auto r = bd::read_npy(p);
    EXPECT_EQ(r.scalar_type(), ts[i].scalar_type()) << i;
    EXPECT_TRUE(r.equal(ts[i])) << i;
    EXPECT_EQ((read_all(p).size() - size_t(ts[i].numel()) * ts[i].element_size()) % 64, 0u) << i;  // aligned header
  }
}

TEST(Npy, BrokenFilesAreInputErrors) {
  ExpectInputError([] { bd::read_npy(broken("bad_header.npy")); }, "bad_header.npy", "header");
  ExpectInputError([] { bd::read_npy(broken("short_data.npy")); }, "short_data.npy", "4000");
  ExpectInputError([] { bd::read_npy(broken("fortran.npy")); }, "fortran.npy", "Fortran");
  ExpectInputError([] { bd::read_npy(broken("big_endian.npy")); }, "big_endian.npy", "big-endian");
  ExpectInputError([] { bd::read_npy(broken("nan.csv")); }, "nan.csv", "NUMPY");
  ExpectInputError([] { bd::read_npy(broken("missing.npy")); }, "missing.npy");
  // every prefix of a valid file is rejected cleanly
  const std::string full = read_all(golden("series.npy"));
  TempDir tmp;
  for (size_t n : {size_t(0), size_t(6), size_t(9), size_t(10), size_t(60), size_t(127), size_t(128), full.size() - 1}) {
    const std::string p = tmp.file("cut.npy", full.substr(0, n));
    if (n == 0) std::ofstream(p, std::ios::binary | std::ios::trunc);
    ExpectInputError([&] { bd::read_npy(p); }, "cut.npy");
  }
}

// ---------------------------------------------------------------- series files

TEST(SeriesFile, CsvEqualsNpy) {
  auto from_npy = bd::load_series_file(golden("series.npy"));
  auto from_csv = bd::load_series_file(golden("series.csv"));  // header line + a blank line
  EXPECT_EQ(from_csv.scalar_type(), torch::kFloat32);
  EXPECT_EQ(from_csv.sizes(), torch::IntArrayRef({20, 3}));
  EXPECT_TRUE(AllClose(from_csv, from_npy, 0.0, "csv vs npy"));
}

TEST(SeriesFile, NpyRanksAndDtypes) {
  auto one_d = bd::load_series_file(golden("series_1d_f8.npy"));
  EXPECT_EQ(one_d.scalar_type(), torch::kFloat32);
  EXPECT_EQ(one_d.sizes(), torch::IntArrayRef({15, 1}));
  auto f8 = bd::read_npy(golden("series_1d_f8.npy"));  // numpy linspace(-2, 2, 15) in float64
  EXPECT_TRUE(AllClose(one_d, f8.to(torch::kFloat32).unsqueeze(1), 0.0, "1-D f8"));
  EXPECT_TRUE(AllClose(one_d, torch::linspace(-2.0, 2.0, 15).unsqueeze(1), 2e-7, "1-D f8 vs linspace"));
  auto ints = bd::load_series_file(golden("series_i4.npy"));
  EXPECT_EQ(ints.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(AllClose(ints, torch::arange(-6, 6, torch::kFloat32).view({4, 3}), 0.0, "i4"));
}

TEST(SeriesFile, CsvVariants) {
  TempDir tmp;
  // CRLF, spaces, no header, no trailing newline, '+' and exponent forms
  auto a = bd::load_series_file(tmp.file("a.csv", "1, 2\r\n\r\n +3.5e1 ,-4\r\n5,6"));
  EXPECT_TRUE(AllClose(a, torch::tensor({1.f, 2.f, 35.f, -4.f, 5.f, 6.f}).view({3, 2}), 0.0, "crlf csv"));
  auto b = bd::load_series_file(tmp.file("b.csv", "x\n1\n2\n"));
  EXPECT_EQ(b.sizes(), torch::IntArrayRef({2, 1}));
  // only the first line may be a header
  ExpectInputError([&] { bd::load_series_file(tmp.file("c.csv", "x,y\n1,2\nx,y\n")); }, "c.csv:3", "column 1");
  // header and data widths must agree
  ExpectInputError([&] { bd::load_series_file(tmp.file("d.csv", "x,y,z\n1,2\n")); }, "d.csv:2", "expected 3");
  // an empty cell in the first line is a hole in the data, not a header
  ExpectInputError([&] { bd::load_series_file(tmp.file("e.csv", "1,,3\n4,5,6\n")); }, "e.csv:1", "column 2 is empty");
  ExpectInputError([&] { bd::load_series_file(tmp.file("f.csv", "1,2\n3,1e999\n")); }, "f.csv:2", "column 2");
  ExpectInputError([&] { bd::load_series_file(tmp.file("g.csv", "1,-inf\n")); }, "g.csv:1", "Inf");
}

TEST(SeriesBroken, EachBadFileIsAnInputError) {
  ExpectInputError([] { bd::load_series_file(broken("nan.csv")); }, "nan.csv:3", "column 2 is NaN");
  ExpectInputError([] { bd::load_series_file(broken("ragged.csv")); }, "ragged.csv:3", "2 columns; expected 3");
  ExpectInputError([] { bd::load_series_file(broken("bad_cell.csv")); }, "bad_cell.csv:2", "'oops'");
  ExpectInputError([] { bd::load_series_file(broken("header_only.csv")); }, "header_only.csv", "no data rows");
  ExpectInputError([] { bd::load_series_file(broken("inf.npy")); }, "inf.npy", "row 4, column 2 is Inf");
  ExpectInputError([] { bd::load_series_file(broken("rank3.npy")); }, "rank3.npy", "[2, 2, 2]");
  ExpectInputError([] { bd::load_series_file(broken("bad_header.npy")); }, "bad_header.npy");
  ExpectInputError([] { bd::load_series_file(broken("short_data.npy")); }, "short_data.npy");
  ExpectInputError([] { bd::load_series_file(broken("fortran.npy")); }, "fortran.npy");
  ExpectInputError([] { bd::load_series_file(broken("big_endian.npy")); }, "big_endian.npy");
  ExpectInputError([] { bd::load_series_file(broken("missing.csv")); }, "missing.csv");
  TempDir tmp;
  bd::write_npy(tmp.file("empty.npy"), torch::empty({0, 2}));
  ExpectInputError([&] { bd::load_series_file(tmp.file("empty.npy")); }, "empty.npy", "empty series");
}

// ---------------------------------------------------------------- inline JSON

TEST(SeriesJson, RowsAndFlat) {
  auto rows = bd::series_from_json(json::parse("[[1, 2.5, -3], [4, 5, 6e-3]]"), "m.jsonl:1: series");
  EXPECT_TRUE(AllClose(rows, torch::tensor({1.f, 2.5f, -3.f, 4.f, 5.f, 6e-3f}).view({2, 3}), 0.0, "rows"));
  auto flat = bd::series_from_json(json::parse("[1, 2, 3, 4]"), "m.jsonl:2: series");
  EXPECT_EQ(flat.sizes(), torch::IntArrayRef({4, 1}));
  EXPECT_EQ(flat.scalar_type(), torch::kFloat32);
}

TEST(SeriesJson, BadInputsNameTheSource) {
  const std::string w = "m.jsonl:7: series";
  auto bad = [&](const char* text, const std::string& also) {
    ExpectInputError([&] { bd::series_from_json(json::parse(text), w); }, w, also);
  };
  bad("[]", "empty");
  bad("[[]]", "row 1 is empty");
  bad("[[1, 2], [3]]", "row 2 has 1 values; expected 2");
  bad("[[1, 2], [3, \"nan\"]]", "row 2, column 2 is string");
  bad("[1, \"nan\", 3]", "element 2 is string");
  bad("[1, true]", "element 2 is boolean");
  bad("[[1], 2]", "row 2 is number");
  bad("[1, [2]]", "element 2 is an array");
  bad("[[[1]]]", "row 1, column 1 is array");
  bad("{\"a\": 1}", "expected an array");
  bad("[1e300]", "float32");
  ExpectInputError([&] { bd::series_from_json(json::array({1.0, std::nan("")}), w); }, w, "element 2 is NaN");
}

}  // namespace
