// braid/serve/index.cpp — embeddings files and the FAISS index (flat, IVF, HNSW; inner product).
#include "braid/serve/index.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/safetensors.h"

namespace braid::serve {

using nlohmann::json;

namespace {

json entries_json(const std::vector<Entry>& es) {
  json a = json::array();
  for (const auto& e : es) a.push_back({{"row", e.row}, {"id", e.id}, {"path", e.path}, {"label", e.label}});
  return a;
}

std::vector<Entry> entries_from(const json& a, const std::string& where) {
  BRAID_INPUT_CHECK(a.is_array(), "{}: 'entries' must be an array", where);
  std::vector<Entry> out;
  out.reserve(a.size());
  for (const auto& j : a) {
    BRAID_INPUT_CHECK(j.is_object() && j.contains("row") && j["row"].is_number_integer(),
                      "{}: entry {} lacks an integer 'row'", where, out.size());
    out.push_back({j["row"].get<int64_t>(), j.value("id", ""), j.value("path", ""), j.value("label", "")});
  }
  return out;
}

json parse_json_file(const std::string& path, const std::string& what) {
  BRAID_INPUT_CHECK(file_exists(path), "{}: no such file; expected {}", path, what);
  try {
    return json::parse(read_text_file(path));
  } catch (const json::exception& e) {
    input_error("{}: not valid JSON ({}); expected {}", path, e.what(), what);
  }
}

uint64_t fnv1a(const std::string& bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  BRAID_INPUT_CHECK(f.good(), "{}: cannot open file", path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace

std::string sidecar_path(const std::string& p) {
  const std::string ext = ".safetensors";
  if (p.size() > ext.size() && p.compare(p.size() - ext.size(), ext.size(), ext) == 0)
    return p.substr(0, p.size() - ext.size()) + ".json";
  return p + ".json";
}

void save_embeddings(const std::string& path, const EmbeddingSet& e) {
  BRAID_INPUT_CHECK(e.vectors.dim() == 2 && e.vectors.size(0) == static_cast<int64_t>(e.entries.size()),
                    "{}: {} vectors for {} entries", path, e.vectors.size(0), e.entries.size());
  std::vector<int64_t> rows;
  for (const auto& x : e.entries) rows.push_back(x.row);
  write_safetensors(path, {{"vectors", e.vectors.to(torch::kFloat).contiguous()}, {"rows", torch::tensor(rows, torch::kLong)}},
                    {{"run", e.run}, {"modality", e.modality}});
  json side = {{"run", e.run},       {"modality", e.modality}, {"manifest", e.manifest}, {"split", e.split},
               {"dim", e.vectors.size(1)}, {"count", e.vectors.size(0)}, {"entries", entries_json(e.entries)}};
  atomic_write_text(sidecar_path(path), side.dump() + "\n");
}

EmbeddingSet load_embeddings(const std::string& path) {
  BRAID_INPUT_CHECK(file_exists(path), "{}: no such embeddings file (write one with `braid embed`)", path);
  auto t = read_safetensors(path);
  BRAID_INPUT_CHECK(t.count("vectors") && t.count("rows"), "{}: expected tensors 'vectors' and 'rows' (from `braid embed`)",
                    path);
  EmbeddingSet e;
  e.vectors = t["vectors"].to(torch::kFloat).contiguous();
  BRAID_INPUT_CHECK(e.vectors.dim() == 2 && e.vectors.size(0) > 0 && e.vectors.size(1) > 0,
                    "{}: 'vectors' must be [N, D] with N, D > 0", path);
  BRAID_INPUT_CHECK(torch::isfinite(e.vectors).all().item<bool>(), "{}: 'vectors' holds NaN or infinite values", path);
  const auto rows = t["rows"];
  BRAID_INPUT_CHECK(rows.dim() == 1 && rows.size(0) == e.vectors.size(0), "{}: 'rows' must be [{}]", path,
                    e.vectors.size(0));
  const std::string side = sidecar_path(path);
  json j = parse_json_file(side, "the sidecar JSON written by `braid embed`");
  e.entries = entries_from(j.value("entries", json::array()), side);
  BRAID_INPUT_CHECK(static_cast<int64_t>(e.entries.size()) == e.vectors.size(0), "{}: {} entries for {} vectors in {}",
                    side, e.entries.size(), e.vectors.size(0), path);
  auto ra = rows.accessor<int64_t, 1>();
  for (size_t i = 0; i < e.entries.size(); ++i)
    BRAID_INPUT_CHECK(e.entries[i].row == ra[i], "{}: entry {} has row {} but {} says {}", side, i, e.entries[i].row,
                      path, ra[i]);
  e.run = j.value("run", "");
  e.modality = j.value("modality", "");
  e.manifest = j.value("manifest", "");
  e.split = j.value("split", "");
  return e;
}

VectorIndex::VectorIndex() = default;
VectorIndex::~VectorIndex() = default;
VectorIndex::VectorIndex(VectorIndex&&) noexcept = default;
VectorIndex& VectorIndex::operator=(VectorIndex&&) noexcept = default;

VectorIndex VectorIndex::build(const EmbeddingSet& e, const IndexSpec& spec) {
  VectorIndex ix;
  ix.spec_ = spec;
  ix.entries_ = e.entries;
  ix.modality_ = e.modality;
  ix.run_ = e.run;
  ix.manifest_ = e.manifest;
  auto x = torch::nn::functional::normalize(e.vectors.to(torch::kFloat),
                                            torch::nn::functional::NormalizeFuncOptions().dim(1)).contiguous();
  const int64_t n = x.size(0), d = x.size(1);
  ix.dim_ = d;
  const float* p = x.data_ptr<float>();
  try {
    if (spec.type == "flat") {
      ix.index_ = std::make_unique<faiss::IndexFlatIP>(d);
    } else if (spec.type == "ivf") {
      int64_t nlist = spec.nlist > 0 ? spec.nlist : std::max<int64_t>(1, int64_t(4 * std::sqrt(double(n))));
      BRAID_INPUT_CHECK(nlist <= n, "--nlist {} is larger than the {} vectors to index", nlist, n);
      auto q = new faiss::IndexFlatIP(d);
      auto ivf = std::make_unique<faiss::IndexIVFFlat>(q, d, static_cast<size_t>(nlist), faiss::METRIC_INNER_PRODUCT);
      ivf->own_fields = true;
      ivf->cp.seed = 1234;
      ivf->train(n, p);
      ivf->nprobe = static_cast<size_t>(std::min(spec.nprobe, nlist));
      ix.spec_.nlist = nlist;
      ix.index_ = std::move(ivf);
    } else if (spec.type == "hnsw") {
      BRAID_INPUT_CHECK(spec.m >= 2 && spec.m <= 512, "--m {}: expected 2..512", spec.m);
      auto h = std::make_unique<faiss::IndexHNSWFlat>(d, static_cast<int>(spec.m), faiss::METRIC_INNER_PRODUCT);
      h->hnsw.efSearch = static_cast<int>(spec.ef_search);
      ix.index_ = std::move(h);
    } else {
      input_error("index type '{}': expected flat, ivf or hnsw", spec.type);
    }
    ix.index_->add(n, p);
  } catch (const faiss::FaissException& ex) {
    input_error("building a {} index of {} vectors of dim {}: {}", spec.type, n, d, ex.what());
  }
  return ix;
}

nlohmann::json VectorIndex::describe() const {
  return {{"type", spec_.type}, {"dim", dim_}, {"count", size()}, {"modality", modality_}, {"run", run_}};
}

void VectorIndex::save(const std::string& dir) const {
  make_dirs(dir);
  const std::string fpath = dir + "/index.faiss";
  atomic_write(fpath, [&](const std::string& tmp) { faiss::write_index(index_.get(), tmp.c_str()); });
  const std::string bytes = read_bytes(fpath);
  json meta = describe();
  meta["format"] = "braid-index-1";
  meta["manifest"] = manifest_;
  meta["nlist"] = spec_.nlist;
  meta["nprobe"] = spec_.nprobe;
  meta["m"] = spec_.m;
  meta["ef_search"] = spec_.ef_search;
  meta["faiss_bytes"] = bytes.size();
  meta["faiss_fnv1a"] = fmt::format("{:016x}", fnv1a(bytes));
  meta["entries"] = entries_json(entries_);
  atomic_write_text(dir + "/meta.json", meta.dump() + "\n");
}

VectorIndex VectorIndex::load(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  BRAID_INPUT_CHECK(fs::is_directory(dir, ec), "{}: no such index directory (build one with `braid index build`)", dir);
  const std::string mpath = dir + "/meta.json", fpath = dir + "/index.faiss";
  json meta = parse_json_file(mpath, "the index metadata written by `braid index build`");
  BRAID_INPUT_CHECK(meta.is_object() && meta.value("format", "") == "braid-index-1",
                    "{}: not a braid index (format 'braid-index-1' expected)", mpath);
  BRAID_INPUT_CHECK(file_exists(fpath), "{}: missing; the index directory is incomplete", fpath);
  const std::string bytes = read_bytes(fpath);
  BRAID_INPUT_CHECK(bytes.size() == meta.value("faiss_bytes", uint64_t(0)) &&
                        fmt::format("{:016x}", fnv1a(bytes)) == meta.value("faiss_fnv1a", ""),
                    "{}: corrupt index file (size or checksum differs from meta.json); rebuild it", fpath);
  VectorIndex ix;
  try {
    ix.index_.reset(faiss::read_index(fpath.c_str()));
  } catch (const faiss::FaissException& ex) {
    std::string msg = ex.what();
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    input_error("{}: cannot read FAISS index ({})", fpath, msg);
  }
  ix.entries_ = entries_from(meta.value("entries", json::array()), mpath);
  ix.dim_ = meta.value("dim", int64_t(0));
  ix.spec_.type = meta.value("type", "");
  ix.spec_.nlist = meta.value("nlist", int64_t(0));
  ix.spec_.nprobe = meta.value("nprobe", int64_t(8));
  ix.spec_.m = meta.value("m", int64_t(32));
  ix.spec_.ef_search = meta.value("ef_search", int64_t(64));
  ix.modality_ = meta.value("modality", "");
  ix.run_ = meta.value("run", "");
  ix.manifest_ = meta.value("manifest", "");
  BRAID_INPUT_CHECK(ix.index_->d == ix.dim_ && ix.index_->ntotal == ix.size(),
                    "{}: index holds {} vectors of dim {} but meta.json lists {} of dim {}", dir, ix.index_->ntotal,
                    ix.index_->d, ix.size(), ix.dim_);
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(ix.index_.get()))
    ivf->nprobe = static_cast<size_t>(std::max<int64_t>(1, std::min<int64_t>(ix.spec_.nprobe, ivf->nlist)));
  if (auto* h = dynamic_cast<faiss::IndexHNSW*>(ix.index_.get())) h->hnsw.efSearch = static_cast<int>(ix.spec_.ef_search);
  return ix;
}

std::vector<std::vector<Hit>> VectorIndex::search(const torch::Tensor& queries, int64_t k) const {
  auto q = queries.dim() == 1 ? queries.unsqueeze(0) : queries;
  BRAID_INPUT_CHECK(q.dim() == 2 && q.size(1) == dim_, "query vectors of dim {}; the index holds dim {}",
                    q.size(q.dim() - 1), dim_);
  q = torch::nn::functional::normalize(q.to(torch::kFloat), torch::nn::functional::NormalizeFuncOptions().dim(1))
          .contiguous();
  k = std::max<int64_t>(1, std::min<int64_t>(k, size()));
  const int64_t nq = q.size(0);
  std::vector<float> dist(size_t(nq * k));
  std::vector<faiss::Index::idx_t> lab(static_cast<size_t>(nq * k));
  index_->search(nq, q.data_ptr<float>(), k, dist.data(), lab.data());
  std::vector<std::vector<Hit>> out(static_cast<size_t>(nq));
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t j = 0; j < k; ++j) {
      const auto l = lab[size_t(i * k + j)];
      if (l < 0) continue;  // fewer than k found (IVF with few probes)
      out[size_t(i)].push_back({static_cast<int64_t>(l), dist[size_t(i * k + j)]});
    }
  return out;
}

}  // namespace braid::serve
