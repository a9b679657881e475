// braid/data/npy.h — NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order).
// Used for series files and for the golden fixtures the tests compare against.
#pragma once

#include <torch/types.h>

#include <string>

namespace braid::data {

// Reads float32/float64/int32/int64/uint8/bool (and int16/int8) arrays; returns a tensor of the matching dtype.
// InputError naming the file for a bad header, unsupported dtype, Fortran order or short data.
torch::Tensor read_npy(const std::string& path);

// Writes a CPU tensor (float32/float64/int32/int64/uint8, also int16/int8/bool) as format 1.0, byte-identical
// to np.save; non-contiguous tensors are made contiguous. Written atomically (temp file + rename).
void write_npy(const std::string& path, const torch::Tensor& t);

}  // namespace braid::data
