// braid/data/series.h — time series / sensor frames: CSV, .npy, or inline JSON arrays -> [T, C] float32.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <torch/types.h>

#include <string>

namespace braid::data {

// CSV: one row per time step, one column per channel, comma separated; a first line that is
// not numeric is taken as a header. .npy: float32/float64/int 1-D ([T] -> [T,1]) or 2-D arrays.
// NaN or Inf anywhere is an InputError naming the file, row and column ("s.csv:3: column 2 is NaN"; for
// .npy "s.npy: row 3, column 2 is NaN"). Blank lines are skipped; rows of different widths and T = 0 are errors.
torch::Tensor load_series_file(const std::string& path);

// An inline array of arrays (rows of equal length) or a flat array ([T] -> [T,1]).
// `where` names the source in errors, e.g. "manifest.jsonl:12: series".
torch::Tensor series_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace braid::data
