// braid/run/hf_checkpoint.h — reading a Hugging Face checkpoint (a model folder or one
// .safetensors file) for `braid import` and the architectures that map its tensors onto braid
// modules (BERT, Llama/Qwen2, CLIP/SigLIP/OpenCLIP).
//
// Everything read is untrusted: every failure is an InputError whose one line names the file,
// the key or the tensor and says what was expected. Nothing is downloaded; the folder must hold
// the files.
//
// Typical use by an importer:
//
//   auto ck = braid::run::open_hf_checkpoint(dir);              // config + fp32 tensors
//   int64_t H = braid::run::hf_int(ck, "hidden_size");           // key missing/wrong type -> one line
//   braid::run::ShapeTable want = {{"embeddings.word_embeddings.weight", {V, H}}, ...};
//   auto t = braid::run::strip_prefix(ck.tensors, "bert.");     // optional: drop a wrapper prefix
//   braid::run::expect_tensors(t, want, ck.source);              // names the first bad tensor
//   ... copy t[...] into the braid module (load_module_tensors after renaming) ...
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "braid/core/safetensors.h"  // TensorMap

namespace braid::run {

// What open_hf_checkpoint read.
struct HfCheckpoint {
  std::string dir;                   // the folder (for a single file: the file's folder)
  std::string source;                // what errors name: the folder, or the single file's path
  nlohmann::json config;             // config.json; an empty object when the folder has none
  std::string config_path;           // its path; empty when absent
  TensorMap tensors;                 // every tensor by its checkpoint name: fp32, contiguous, CPU
  std::vector<std::string> weight_files;  // the .safetensors files read, in reading order
  std::vector<std::string> skipped;       // integer `*position_ids` buffers left out (see below)
};

// Open `path`:
//   - a folder with `model.safetensors.index.json` (sharded): its "weight_map" (tensor -> shard
//     file in the same folder) is read; every shard must exist, every tensor it names must be in
//     that shard, and a tensor found in a shard it is not mapped to, or in two shards, is refused;
//   - else a folder with `model.safetensors`;
//   - else a folder with exactly one `*.safetensors` file (e.g. open_clip_model.safetensors);
//   - or one `.safetensors` file (its folder's config.json is read when present).
// A folder with only `pytorch_model.bin` / `*.bin` / `*.pt` is refused (pickle files are not
// read: convert them to safetensors first), as is a folder with several unindexed .safetensors.
// config.json, when present, must be a JSON object. Tensors stored as F16/BF16/F32 are converted
// to fp32; any other dtype (F64, I8, U8, ...) is refused naming the tensor and the file, except
// I64/I32 tensors named `*position_ids` (the arange buffer transformers saves with BERT/CLIP models),
// which are left out of `tensors` and listed in `skipped`.
HfCheckpoint open_hf_checkpoint(const std::string& path);

// Only the config.json of folder `dir` (InputError when missing or not a JSON object).
nlohmann::json read_hf_config(const std::string& dir);

// Tensor name -> expected shape.
using ShapeTable = std::map<std::string, std::vector<int64_t>>;

// Check that `tensors` holds exactly the names of `expected` with those shapes. Throws ONE
// InputError naming the first problem, in this order: a missing tensor, an unexpected tensor
// (a name `expected` lacks), a mis-shaped tensor (with the expected and the got shape), e.g.
//   "<source>: tensor 'encoder.layer.0.output.dense.weight' has shape [32, 64], expected [32, 37]"
// `ignore` lists exact names that may be present without being expected (e.g. the
// "embeddings.position_ids" buffer that some transformers versions save).
void expect_tensors(const TensorMap& tensors, const ShapeTable& expected, const std::string& source,
                    const std::vector<std::string>& ignore = {});

// The tensors whose name starts with `prefix`, with it removed; others are kept unchanged when
// `keep_others`, else dropped. For wrappers such as "bert." or "model.".
TensorMap strip_prefix(const TensorMap& tensors, const std::string& prefix, bool keep_others = true);

// config.json getters whose errors name the config file and the key with what was expected.
int64_t hf_int(const HfCheckpoint& ck, const std::string& key);
int64_t hf_int(const HfCheckpoint& ck, const std::string& key, int64_t fallback);  // fallback when absent
double hf_float(const HfCheckpoint& ck, const std::string& key, double fallback);
std::string hf_string(const HfCheckpoint& ck, const std::string& key, const std::string& fallback);
// The same on any JSON object (e.g. a nested "text_config"); `where` names it in errors.
int64_t json_int(const nlohmann::json& j, const std::string& key, const std::string& where);
int64_t json_int(const nlohmann::json& j, const std::string& key, int64_t fallback, const std::string& where);
double json_float(const nlohmann::json& j, const std::string& key, double fallback, const std::string& where);
std::string json_string(const nlohmann::json& j, const std::string& key, const std::string& fallback,
                        const std::string& where);

// A JSON file read and parsed (InputError naming the file on a read or parse failure).
nlohmann::json read_json_file(const std::string& path);

// Hex SHA-256 of a file's bytes (for recording what was imported in a run's facts).
std::string file_sha256(const std::string& path);

}  // namespace braid::run
