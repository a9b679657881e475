// braid/core/safetensors.h — tensor files in the safetensors format (8-byte little-endian header
// length, a JSON header of {name: {dtype, shape, data_offsets}}, then the raw little-endian data).
//
// Every file is untrusted: header size, offsets, dtypes and shapes are checked against the file
// size and each other, and any inconsistency is an InputError naming the file and the tensor.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <string>

namespace braid {

using TensorMap = std::map<std::string, torch::Tensor>;

// F32, F64, F16, BF16, I64, I32, I16, I8, U8, BOOL.
TensorMap read_safetensors(const std::string& path);
// Writes contiguous CPU copies, atomically; `metadata` goes to "__metadata__".
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Copy `tensors` into the module's parameters and buffers by name. Rejects (InputError naming
// `source` and the tensor) unknown names, missing names, and shape or dtype mismatches; a
// tensor is never reshaped to fit. `prefix` is prepended to module names when matching.
void load_module_tensors(torch::nn::Module& m, const TensorMap& tensors, const std::string& source,
                         const std::string& prefix = "");
// The module's parameters and buffers by name (detached CPU tensors).
TensorMap module_tensors(const torch::nn::Module& m, const std::string& prefix = "");

}  // namespace braid
