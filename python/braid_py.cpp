// python/braid_py.cpp — `import braid`: Python bindings (pybind11) over the library layers.
//
// An app-layer boundary like apps/braid: it parses Python arguments, calls the same entry points the CLI
// and the server call (run::open_run, serve::Embedder, serve::VectorIndex, run::Generator,
// train::train) and turns results into numpy arrays and dicts. No pipeline code lives here: an image
// path goes through the run's Preprocessor exactly as `braid embed` does; an in-memory uint8 image
// through the same resize and normalization (data/image.h). Errors of braid arrive as braid.Error
// (a subclass of ValueError and RuntimeError) with braid's one-line message. Compute runs with the
// GIL released. docs/python.md is the user's guide.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>
#include <yaml-cpp/yaml.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/precision.h"
#include "braid/core/runtime.h"
#include "braid/data/image.h"
#include "braid/run/generator.h"
#include "braid/run/pipeline.h"
#include "braid/run/query.h"
#include "braid/run/run_dir.h"
#include "braid/serve/embedder.h"
#include "braid/serve/index.h"
#include "braid/train/trainer.h"

namespace py = pybind11;
using json = nlohmann::json;

namespace braid::python {

namespace {

constexpr int64_t kChunk = 64;  // inputs per forward pass

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// ---- conversions -------------------------------------------------------------------------------

// A float32 CPU tensor as a numpy array that shares its memory: the array's base is a capsule owning
// a reference to the tensor, so the storage lives as long as the array (no copy).
py::array to_numpy(torch::Tensor t) {
  t = t.to(torch::kCPU).to(torch::kFloat).contiguous();
  auto* keep = new torch::Tensor(t);
  py::capsule owner(keep, [](void* p) { delete static_cast<torch::Tensor*>(p); });
  std::vector<py::ssize_t> shape, strides;
  for (int64_t d = 0; d < t.dim(); ++d) {
    shape.push_back(t.size(d));
    strides.push_back(t.stride(d) * static_cast<py::ssize_t>(sizeof(float)));
  }
  return py::array_t<float>(shape, strides, keep->data_ptr<float>(), owner);
}

py::object json_to_py(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return py::none();
    case json::value_t::boolean: return py::bool_(j.get<bool>());
    case json::value_t::number_integer: return py::int_(j.get<int64_t>());
    case json::value_t::number_unsigned: return py::int_(j.get<uint64_t>());
    case json::value_t::number_float: return py::float_(j.get<double>());
    case json::value_t::string: return py::str(j.get<std::string>());
    case json::value_t::array: {
      py::list l;
      for (const auto& x : j) l.append(json_to_py(x));
      return l;
    }
    case json::value_t::object: {
      py::dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d[py::str(it.key())] = json_to_py(it.value());
      return d;
    }
    default: return py::none();
  }
}

// A YAML scalar as the Python value YAML means: bool, int, float or str.
py::object yaml_scalar(const YAML::Node& n) {
  if (n.Tag() == "!") return py::str(n.Scalar());  // quoted: a string
  const std::string& s = n.Scalar();
  if (s == "true" || s == "True") return py::bool_(true);
  if (s == "false" || s == "False") return py::bool_(false);
  if (s == "null" || s == "~" || s.empty()) return py::none();
  try {
    size_t used = 0;
    long long v = std::stoll(s, &used);
    if (used == s.size()) return py::int_(v);
  } catch (...) {
  }
  try {
    size_t used = 0;
    double v = std::stod(s, &used);
    if (used == s.size()) return py::float_(v);
  } catch (...) {
  }
  return py::str(s);
}

py::object yaml_to_py(const YAML::Node& n) {
  if (n.IsMap()) {
    py::dict d;
    for (const auto& kv : n) d[py::str(kv.first.Scalar())] = yaml_to_py(kv.second);
    return d;
  }
  if (n.IsSequence()) {
    py::list l;
    for (const auto& x : n) l.append(yaml_to_py(x));
    return l;
  }
  if (n.IsScalar()) return yaml_scalar(n);
  return py::none();
}

const char* task_name(run::Task t) {
  switch (t) {
    case run::Task::Classify: return "classify";
    case run::Task::Regress: return "regress";
    case run::Task::Align: return "align";
    case run::Task::Generate: return "generate";
  }
  return "?";
}

// One input of one modality, read from Python while holding the GIL (preprocessed later without it).
struct Input {
  std::string name;     // "images[3]" or the path: names it in errors
  std::string path;     // a file
  std::string payload;  // text, or a file's bytes
  data::RawImage raw;   // an in-memory RGB image
  std::vector<float> wave;  // an in-memory waveform at the run's sample rate
  enum Kind { Path, Bytes, Text, Raw, Wave } kind = Path;
};

bool is_pathlike(const py::handle& h) {
  return py::isinstance<py::str>(h) || py::hasattr(h, "__fspath__");
}

std::string fspath(const py::handle& h) {
  return py::str(py::module_::import("os").attr("fspath")(h)).cast<std::string>();
}

std::string shape_of(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? "," : "") + std::to_string(a.shape(i));
  return s + "]";
}

data::RawImage raw_image(const py::array& a, const std::string& name) {
  BRAID_INPUT_CHECK(a.dtype().is(py::dtype::of<uint8_t>()) && a.ndim() == 3 && a.shape(2) == 3 && a.shape(0) > 0 &&
                        a.shape(1) > 0,
                    "{}: expected a uint8 RGB image [H,W,3], got {} {}", name, std::string(py::str(a.dtype())),
                    shape_of(a));
  auto c = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>::ensure(a);
  data::RawImage img;
  img.height = c.shape(0);
  img.width = c.shape(1);
  img.rgb.assign(c.data(), c.data() + c.size());
  return img;
}

// images: a uint8 array [N,H,W,3] (or one [H,W,3]), or a list of paths, bytes (file contents) or [H,W,3] arrays.
std::vector<Input> image_inputs(const py::object& obj) {
  std::vector<Input> out;
  if (py::isinstance<py::array>(obj)) {
    py::array a = obj;
    if (a.ndim() == 3) {
      out.push_back({"images", "", "", raw_image(a, "images"), {}, Input::Raw});
      return out;
    }
    BRAID_INPUT_CHECK(a.ndim() == 4, "images: expected a uint8 array [N,H,W,3] (or a list of paths), got {} {}",
                      std::string(py::str(a.dtype())), shape_of(a));
    for (py::ssize_t i = 0; i < a.shape(0); ++i) {
      const std::string name = "images[" + std::to_string(i) + "]";
      out.push_back({name, "", "", raw_image(obj[py::int_(i)], name), {}, Input::Raw});
    }
    return out;
  }
  BRAID_INPUT_CHECK(!is_pathlike(obj), "images: expected a list of paths (or a uint8 array [N,H,W,3]), got one path; "
                                       "pass [path]");
  size_t i = 0;
  for (const auto& h : obj) {
    const std::string name = "images[" + std::to_string(i++) + "]";
    if (is_pathlike(h)) {
      const auto p = fspath(h);
      out.push_back({p, p, "", {}, {}, Input::Path});
    } else if (py::isinstance<py::bytes>(h)) {
      out.push_back({name, "", h.cast<std::string>(), {}, {}, Input::Bytes});
    } else if (py::isinstance<py::array>(h)) {
      out.push_back({name, "", "", raw_image(py::reinterpret_borrow<py::array>(h), name), {}, Input::Raw});
    } else {
      input_error("{}: expected a path, bytes or a uint8 [H,W,3] array, got {}", name,
                  std::string(py::str(h.get_type().attr("__name__"))));
    }
  }
  return out;
}

std::vector<Input> text_inputs(const py::object& obj) {
  std::vector<Input> out;
  BRAID_INPUT_CHECK(!py::isinstance<py::str>(obj), "texts: expected a list of strings, got one string; pass [text]");
  size_t i = 0;
  for (const auto& h : obj) {
    const std::string name = "texts[" + std::to_string(i++) + "]";
    BRAID_INPUT_CHECK(py::isinstance<py::str>(h), "{}: expected a string, got {}", name,
                      std::string(py::str(h.get_type().attr("__name__"))));
    out.push_back({name, "", h.cast<std::string>(), {}, {}, Input::Text});
  }
  return out;
}

// audio: a list of paths, bytes (WAV file contents) or 1-D float arrays (mono, at the run's sample rate).
std::vector<Input> audio_inputs(const py::object& obj) {
  std::vector<Input> out;
  BRAID_INPUT_CHECK(!is_pathlike(obj) && !py::isinstance<py::array>(obj),
                    "audio: expected a list of paths or 1-D float arrays; pass [x] for one");
  size_t i = 0;
  for (const auto& h : obj) {
    const std::string name = "audio[" + std::to_string(i++) + "]";
    if (is_pathlike(h)) {
      const auto p = fspath(h);
      out.push_back({p, p, "", {}, {}, Input::Path});
    } else if (py::isinstance<py::bytes>(h)) {
      out.push_back({name, "", h.cast<std::string>(), {}, {}, Input::Bytes});
    } else if (py::isinstance<py::array>(h)) {
      py::array a = py::reinterpret_borrow<py::array>(h);
      BRAID_INPUT_CHECK(a.ndim() == 1 && a.shape(0) > 0 && a.dtype().kind() == 'f',
                        "{}: expected a 1-D float waveform, got {} {}", name, std::string(py::str(a.dtype())),
                        shape_of(a));
      auto c = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
      Input in{name, "", "", {}, {}, Input::Wave};
      in.wave.assign(c.data(), c.data() + c.size());
      out.push_back(std::move(in));
    } else {
      input_error("{}: expected a path, bytes or a 1-D float array, got {}", name,
                  std::string(py::str(h.get_type().attr("__name__"))));
    }
  }
  return out;
}

// A mono float32 WAV file (IEEE float, format 3) in memory: an in-memory waveform then takes the very
// path of a file's bytes through the run's Preprocessor (decode, resample, log-mel, normalization).
std::string wav_bytes(const std::vector<float>& s, int64_t rate) {
  auto put32 = [](std::string& b, uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<char>(v >> (8 * i))); };
  auto put16 = [](std::string& b, uint16_t v) { for (int i = 0; i < 2; ++i) b.push_back(static_cast<char>(v >> (8 * i))); };
  const uint32_t data = static_cast<uint32_t>(s.size() * 4);
  std::string b = "RIFF";
  put32(b, 36 + data);
  b += "WAVEfmt ";
  put32(b, 16);
  put16(b, 3);  // IEEE float
  put16(b, 1);  // mono
  put32(b, static_cast<uint32_t>(rate));
  put32(b, static_cast<uint32_t>(rate * 4));
  put16(b, 4);
  put16(b, 32);
  b += "data";
  put32(b, data);
  b.append(reinterpret_cast<const char*>(s.data()), data);
  return b;
}

// One input through the run's preprocessing (no GIL needed).
torch::Tensor preprocess(const data::Preprocessor& pre, const std::string& modality, const Input& in) {
  switch (in.kind) {
    case Input::Path: return run::preprocess_query(pre, run::query_from_file(modality, in.path));
    case Input::Bytes: return run::preprocess_query(pre, run::Query{modality, in.payload, in.name});
    case Input::Text: return run::preprocess_query(pre, run::Query{"text", in.payload, in.name});
    case Input::Raw:
      // the run's geometric path (resize mode, filter, centre crop), as for files
      return data::normalize_image(data::fit_image(in.raw, pre.options().image), pre.options().image);
    case Input::Wave:
      return run::preprocess_query(pre, run::Query{"audio", wav_bytes(in.wave, pre.options().audio.sample_rate), in.name});
  }
  return {};
}

std::map<std::string, std::vector<Input>> collect(const py::object& images, const py::object& texts,
                                                  const py::object& audio) {
  std::map<std::string, std::vector<Input>> in;
  if (!images.is_none()) in["image"] = image_inputs(images);
  if (!texts.is_none()) in["text"] = text_inputs(texts);
  if (!audio.is_none()) in["audio"] = audio_inputs(audio);
  for (const auto& [m, v] : in) BRAID_INPUT_CHECK(!v.empty(), "{}: expected at least one input, got none", m == "text" ? "texts" : m == "image" ? "images" : m);
  return in;
}

// ---- Run ---------------------------------------------------------------------------------------

// A finished run: metadata, embed (align runs), predict (classify / regress), generate (generate runs).
class Run {
 public:
  Run(std::string dir, std::string weights, std::string device, int threads)
      : dir_(std::move(dir)), weights_(std::move(weights)), device_(std::move(device)) {
    configure_threads(threads);
    run::RunDir rd(dir_);
    BRAID_INPUT_CHECK(rd.is_run(), "{}: not a run directory (no {}); train one with braid.train or `braid train`",
                      dir_, rd.recipe());
    // the recipe's task says which owner opens the run (each loads the weights once)
    const auto task = Config::from_file(rd.recipe()).get<std::string>("task", "classify");
    task_ = task == "align" ? run::Task::Align : task == "generate" ? run::Task::Generate
            : task == "regress" ? run::Task::Regress : run::Task::Classify;
    py::gil_scoped_release nogil;
    if (task_ == run::Task::Align) {
      BRAID_INPUT_CHECK(device_.empty(), "{}: device: align runs embed on the run's own device", dir_);
      emb_ = std::make_unique<serve::Embedder>(dir_, weights_);
    } else if (task_ == run::Task::Generate) {
      gen_ = std::make_unique<run::Generator>(dir_, weights_, device_);
    } else {
      pipe_ = std::make_unique<run::Pipeline>(run::open_run(dir_, weights_, device_));
      pipe_->model->eval();
    }
  }

  const run::Pipeline& pipeline() const {
    if (emb_) return const_cast<serve::Embedder&>(*emb_).pipeline();
    if (gen_) return gen_->pipeline();
    return *pipe_;
  }
  const std::string& dir() const { return dir_; }

  py::dict info() const {
    const auto& p = pipeline();
    py::dict d;
    d["dir"] = dir_;
    d["task"] = task_name(p.task);
    d["model"] = p.recipe.at("model").get<std::string>("name", "");
    d["modalities"] = p.modalities;
    d["classes"] = p.classes ? py::cast(p.classes->names()) : py::list();
    d["outputs"] = p.outputs;
    d["embeds"] = emb_ ? py::cast(emb_->modalities()) : py::list();
    d["recipe"] = yaml_to_py(p.recipe.node());
    d["facts"] = json_to_py(p.facts);
    return d;
  }

  py::object embed(const py::object& images, const py::object& texts, const py::object& audio) {
    BRAID_INPUT_CHECK(emb_, "{}: embed needs an align run (task: align); this run's task is '{}'", dir_,
                      task_name(task_));
    auto in = collect(images, texts, audio);
    BRAID_INPUT_CHECK(!in.empty(), "embed: give images=, texts= or audio=");
    std::map<std::string, torch::Tensor> out;
    {
      py::gil_scoped_release nogil;
      for (const auto& [m, inputs] : in) {
        BRAID_INPUT_CHECK(emb_->embeds(m), "{}: the model does not embed '{}'; it embeds {}", dir_, m,
                          fmt::format("{}", fmt::join(emb_->modalities(), ", ")));
        std::vector<torch::Tensor> parts;
        for (size_t s = 0; s < inputs.size(); s += kChunk) {
          std::vector<torch::Tensor> xs;
          for (size_t i = s; i < std::min(inputs.size(), s + kChunk); ++i)
            xs.push_back(preprocess(emb_->preprocessor(), m, inputs[i]));
          auto b = run::query_batch(m, xs);
          parts.push_back(emb_->embed(m, b.mods.at(m)));
        }
        out[m] = parts.size() == 1 ? parts[0] : torch::cat(parts);
      }
    }
    if (out.size() == 1) return to_numpy(out.begin()->second);
    py::dict d;
    for (auto& [m, t] : out) d[py::str(m)] = to_numpy(t);
    return d;
  }

  py::dict predict(const py::object& images, const py::object& texts, const py::object& audio) {
    BRAID_INPUT_CHECK(pipe_, "{}: predict needs a classification or regression run; this run's task is '{}'", dir_,
                      task_name(task_));
    auto in = collect(images, texts, audio);
    auto& p = *pipe_;
    std::vector<std::string> missing;
    for (const auto& m : p.modalities)
      if (!in.count(m)) missing.push_back(m);
    BRAID_INPUT_CHECK(missing.empty(), "predict: the run reads {}; missing: {}", fmt::format("{}", fmt::join(p.modalities, ", ")),
                      fmt::format("{}", fmt::join(missing, ", ")));
    size_t n = 0;
    for (const auto& [m, v] : in) {
      BRAID_INPUT_CHECK(std::find(p.modalities.begin(), p.modalities.end(), m) != p.modalities.end(),
                        "predict: the run reads {}, not {}", fmt::format("{}", fmt::join(p.modalities, ", ")), m);
      BRAID_INPUT_CHECK(n == 0 || v.size() == n, "predict: every modality needs the same number of inputs; got {} {} "
                        "after {}", v.size(), m, n);
      n = v.size();
    }
    torch::Tensor outs;
    {
      py::gil_scoped_release nogil;
      std::vector<torch::Tensor> parts;
      for (size_t s = 0; s < n; s += kChunk) {
        const size_t e = std::min(n, s + kChunk);
        Batch batch;
        for (size_t i = s; i < e; ++i) batch.index.push_back(static_cast<int64_t>(i));
        for (const auto& [m, inputs] : in) {
          std::vector<torch::Tensor> xs;
          for (size_t i = s; i < e; ++i) xs.push_back(preprocess(*p.pre, m, inputs[i]));
          batch.mods[m] = run::query_batch(m, xs).mods.at(m);
        }
        torch::NoGradGuard ng;
        AutocastScope ac(p.device.type(), p.precision);
        parts.push_back(p.model->forward(batch.to(p.device)).to(torch::kCPU).to(torch::kFloat));
      }
      outs = torch::cat(parts);
    }
    py::dict d;
    if (p.task == run::Task::Classify) {
      auto probs = torch::softmax(outs, 1).contiguous();
      auto arg = probs.argmax(1);
      py::list labels;
      for (int64_t i = 0; i < arg.size(0); ++i)
        labels.append(p.classes ? p.classes->names().at(static_cast<size_t>(arg[i].item<int64_t>()))
                                : std::to_string(arg[i].item<int64_t>()));
      d["probabilities"] = to_numpy(probs);
      d["labels"] = labels;
      d["classes"] = p.classes ? py::cast(p.classes->names()) : py::list();
    } else {
      d["values"] = to_numpy(outs);
    }
    return d;
  }

  py::dict generate(const std::string& text, const py::object& image, const py::object& audio, const std::string& task,
                    int64_t max_tokens, double temperature, int64_t top_k, double top_p, uint64_t seed,
                    const py::object& on_text) {
    BRAID_INPUT_CHECK(gen_, "{}: generate needs a generative run (task: generate); this run's task is '{}'", dir_,
                      task_name(task_));
    BRAID_INPUT_CHECK(image.is_none() || audio.is_none(), "generate: give image= or audio=, not both");
    BRAID_INPUT_CHECK(max_tokens >= 1 && max_tokens <= 4096, "generate: max_tokens: expected 1..4096, got {}", max_tokens);
    run::GenerateRequest r;
    r.prompt = text;
    r.task = task;
    r.options.max_tokens = max_tokens;
    r.options.seed = seed;
    r.options.sample.temperature = temperature;
    r.options.sample.top_k = top_k;
    r.options.sample.top_p = top_p;
    for (auto [m, obj] : {std::pair<std::string, py::object>{"image", image}, {"audio", audio}}) {
      if (obj.is_none()) continue;
      if (is_pathlike(obj)) {
        r.input = run::query_from_file(m, fspath(obj));
      } else if (py::isinstance<py::bytes>(obj)) {
        r.input = run::Query{m, obj.cast<std::string>(), m};
      } else {
        input_error("{}: expected a path or the file's bytes, got {}", m, std::string(py::str(obj.get_type().attr("__name__"))));
      }
    }
    std::function<bool(const std::string&)> cb;
    std::optional<py::error_already_set> cb_error;
    if (!on_text.is_none()) {
      cb = [&](const std::string& delta) {
        py::gil_scoped_acquire gil;
        try {
          py::object keep = on_text(delta);
          return keep.is_none() || keep.cast<bool>();
        } catch (py::error_already_set& e) {
          cb_error = std::move(e);
          return false;
        }
      };
    }
    run::GenerateAnswer a;
    {
      py::gil_scoped_release nogil;
      a = gen_->generate(r, cb);
    }
    if (cb_error) throw std::move(*cb_error);
    py::dict d;
    d["text"] = a.text;
    d["ids"] = a.ids;
    d["task"] = a.task;
    d["prompt"] = a.prompt;
    d["stopped"] = a.stopped;
    return d;
  }

  serve::Embedder* embedder() { return emb_.get(); }

 private:
  std::string dir_, weights_, device_;
  run::Task task_ = run::Task::Classify;
  std::unique_ptr<serve::Embedder> emb_;
  std::unique_ptr<run::Generator> gen_;
  std::unique_ptr<run::Pipeline> pipe_;
};

// ---- Index -------------------------------------------------------------------------------------

class Index {
 public:
  Index(const std::string& dir, py::object run) : dir_(dir), run_(std::move(run)) {
    py::gil_scoped_release nogil;
    ix_ = serve::VectorIndex::load(dir);
  }

  py::object search(const py::object& vectors, const py::object& text, const py::object& image,
                    const py::object& audio, int64_t k, py::object run) {
    BRAID_INPUT_CHECK(k >= 1 && k <= 10000, "search: k: expected 1..10000, got {}", k);
    const int given = !vectors.is_none() + !text.is_none() + !image.is_none() + !audio.is_none();
    BRAID_INPUT_CHECK(given == 1, "search: give one of vectors, text=, image= or audio=");
    bool single = false;
    torch::Tensor q;
    if (!vectors.is_none()) {
      auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(vectors);
      BRAID_INPUT_CHECK(a && (a.ndim() == 1 || a.ndim() == 2), "search: vectors: expected float [D] or [Q,D], got {}",
                        a ? shape_of(a) : std::string("a non-array"));
      single = a.ndim() == 1;
      const int64_t rows = single ? 1 : a.shape(0), d = a.shape(a.ndim() - 1);
      q = torch::from_blob(const_cast<float*>(a.data()), {rows, d}, torch::kFloat).clone();
    } else {
      Run& r = resolve_run(run);
      single = (!text.is_none() && py::isinstance<py::str>(text)) || (!image.is_none() && is_pathlike(image)) ||
               (!audio.is_none() && is_pathlike(audio));
      auto wrap = [&](const py::object& o) -> py::object {
        if (!single) return o;
        py::list l;
        l.append(o);
        return l;
      };
      py::object e = r.embed(image.is_none() ? py::none() : wrap(image), text.is_none() ? py::none() : wrap(text),
                             audio.is_none() ? py::none() : wrap(audio));
      auto a = e.cast<py::array_t<float>>();
      q = torch::from_blob(const_cast<float*>(a.data()), {a.shape(0), a.shape(1)}, torch::kFloat).clone();
    }
    BRAID_INPUT_CHECK(q.size(1) == ix_.dim(), "{}: index holds dim {} but the query has dim {} (another run?)", dir_,
                      ix_.dim(), q.size(1));
    std::vector<std::vector<serve::Hit>> hits;
    {
      py::gil_scoped_release nogil;
      hits = ix_.search(q, k);
    }
    py::list all;
    for (const auto& row : hits) {
      py::list l;
      int rank = 1;
      for (const auto& h : row) {
        const auto& en = ix_.entries()[static_cast<size_t>(h.slot)];
        py::dict d;
        d["rank"] = rank++;
        d["score"] = h.score;
        d["id"] = en.id;
        d["row"] = en.row;
        d["path"] = en.path;
        d["label"] = en.label;
        l.append(d);
      }
      all.append(l);
    }
    return single ? all[0] : py::object(all);
  }

  py::dict info() const {
    py::dict d = json_to_py(ix_.describe());
    d["dir"] = dir_;
    return d;
  }
  int64_t size() const { return ix_.size(); }

 private:
  Run& resolve_run(py::object run) {
    if (run.is_none()) run = run_;
    if (run.is_none()) {  // the run that embedded the index (meta.json)
      BRAID_INPUT_CHECK(!ix_.run().empty(), "{}: the index names no run; pass run=braid.Run(dir)", dir_);
      run_ = py::cast(std::make_shared<Run>(ix_.run(), "model", "", 0));
      run = run_;
    } else if (is_pathlike(run)) {
      run_ = py::cast(std::make_shared<Run>(fspath(run), "model", "", 0));
      run = run_;
    }
    return run.cast<Run&>();
  }

  std::string dir_;
  py::object run_;
  serve::VectorIndex ix_;
};

// ---- train -------------------------------------------------------------------------------------

std::vector<std::string> read_new_lines(const std::string& path, std::streamoff& offset) {
  std::vector<std::string> lines;
  std::ifstream f(path, std::ios::binary);
  if (!f) return lines;
  f.seekg(offset);
  std::string chunk((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t start = 0;
  for (size_t nl; (nl = chunk.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(chunk.substr(start, nl - start));
  offset += static_cast<std::streamoff>(start);  // a torn last line waits for its newline
  return lines;
}

std::string yaml_value(const py::handle& v) {
  if (py::isinstance<py::bool_>(v)) return v.cast<bool>() ? "true" : "false";
  if (py::isinstance<py::int_>(v) || py::isinstance<py::float_>(v)) return py::str(v);
  if (py::isinstance<py::str>(v)) return v.cast<std::string>();
  // lists and dicts: JSON is YAML
  return py::str(py::module_::import("json").attr("dumps")(v));
}

py::dict py_train(const std::string& recipe, const std::string& data, const std::string& out, const py::object& set,
               bool resume, int threads, const std::string& device, int64_t seed, const py::object& progress,
               const py::kwargs& overrides) {
  train::RunOptions o;
  o.recipe = recipe;
  o.data = data;
  o.out = out;
  o.resume = resume;
  o.threads = threads;
  o.device = device;
  o.seed = seed;
  BRAID_INPUT_CHECK(!out.empty(), "train: out: a run directory is required");
  if (!set.is_none()) {
    if (py::isinstance<py::dict>(set)) {
      for (const auto& kv : set.cast<py::dict>()) o.sets.push_back(py::str(kv.first).cast<std::string>() + "=" + yaml_value(kv.second));
    } else {
      for (const auto& s : set) o.sets.push_back(py::str(s));
    }
  }
  // train__max_steps=3 -> "train.max_steps=3" (a Python keyword cannot hold a dot)
  for (const auto& kv : overrides) {
    std::string key = py::str(kv.first);
    for (size_t p; (p = key.find("__")) != std::string::npos;) key.replace(p, 2, ".");
    o.sets.push_back(key + "=" + yaml_value(kv.second));
  }
  const std::string metrics = run::RunDir(out).metrics();
  std::streamoff offset = 0;
  if (resume) {
    std::ifstream f(metrics, std::ios::binary | std::ios::ate);
    if (f) offset = f.tellg();
  }
  train::TrainResult r;
  std::exception_ptr err;
  std::optional<py::error_already_set> cb_error;
  {
    py::gil_scoped_release nogil;
    std::atomic<bool> done{false};
    std::thread worker([&] {
      try {
        r = train::train(o);
      } catch (...) {
        err = std::current_exception();
      }
      done = true;
    });
    // Progress: every record the trainer appends to metrics.jsonl (train steps and validations), as a dict.
    while (true) {
      const bool finished = done.load();
      auto lines = read_new_lines(metrics, offset);
      if (!lines.empty() && !progress.is_none() && !cb_error) {
        py::gil_scoped_acquire gil;
        for (const auto& l : lines) {
          auto j = json::parse(l, nullptr, false);
          if (j.is_discarded()) continue;
          try {
            progress(json_to_py(j));
          } catch (py::error_already_set& e) {
            cb_error = std::move(e);  // raised when training ends
            break;
          }
        }
      }
      if (finished) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    worker.join();
  }
  if (err) std::rethrow_exception(err);
  if (cb_error) throw std::move(*cb_error);
  py::dict d;
  d["run"] = r.run_dir;
  d["steps"] = r.steps;
  d["seconds"] = r.seconds;
  d["parameters"] = r.parameters;
  d["val"] = json_to_py(r.val);
  return d;
}

}  // namespace

}  // namespace braid::python

PYBIND11_MODULE(braid, m) {
  using namespace braid::python;
  namespace b = braid;
  m.doc() = "braid: multimodal learning (text, images, audio) from Python; docs/python.md";
  m.attr("__version__") = BRAID_VERSION;
  b::setup_logging(false);  // "[braid] ..." lines on stderr, as the CLI prints them

  // braid.Error: braid's one-line message for bad input (a file, a key, a tensor) and library failures.
  // (a plain PyObject* kept for the life of the process: no destructor runs after the interpreter is gone)
  static PyObject* error = PyErr_NewExceptionWithDoc(
      "braid.Error", "a braid failure: bad input (the message names the file / key / tensor) or a library error",
      py::make_tuple(py::handle(PyExc_ValueError), py::handle(PyExc_RuntimeError)).ptr(), nullptr);
  if (!error) throw py::error_already_set();
  m.attr("Error") = py::handle(error);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const b::Interrupted&) {
      PyErr_SetNone(PyExc_KeyboardInterrupt);
    } catch (const b::InputError& e) {
      PyErr_SetString(error, first_line(e.what()).c_str());
    } catch (const c10::Error& e) {
      PyErr_SetString(error, first_line(e.what_without_backtrace()).c_str());
    }
  });

  py::class_<Run, std::shared_ptr<Run>>(m, "Run", "a finished run directory (`braid train --out DIR`)")
      .def(py::init<std::string, std::string, std::string, int>(), py::arg("dir"), py::arg("weights") = "model",
           py::arg("device") = "", py::arg("threads") = 0,
           "open a run: weights = model | best | last | a file; device '' = the run's; threads 0 = all cores")
      .def_property_readonly("dir", &Run::dir)
      .def_property_readonly("info", &Run::info, "task, model, modalities, classes, recipe (dict), facts")
      .def_property_readonly("task", [](const Run& r) { return task_name(r.pipeline().task); })
      .def_property_readonly("model", [](const Run& r) { return py::str(r.info()["model"]); })
      .def_property_readonly("modalities", [](const Run& r) { return r.pipeline().modalities; })
      .def_property_readonly("classes", [](const Run& r) {
        return r.pipeline().classes ? r.pipeline().classes->names() : std::vector<std::string>{};
      })
      .def_property_readonly("recipe", [](const Run& r) { return yaml_to_py(r.pipeline().recipe.node()); })
      .def("embed", &Run::embed, py::kw_only(), py::arg("images") = py::none(), py::arg("texts") = py::none(),
           py::arg("audio") = py::none(),
           "L2-normalized float32 vectors [N, D]: one array for one modality, a dict {modality: array} for several")
      .def("predict", &Run::predict, py::kw_only(), py::arg("images") = py::none(), py::arg("texts") = py::none(),
           py::arg("audio") = py::none(),
           "classification: {probabilities [N,K], labels, classes}; regression: {values [N,D]}")
      .def("generate", &Run::generate, py::kw_only(), py::arg("text") = "", py::arg("image") = py::none(),
           py::arg("audio") = py::none(), py::arg("task") = "", py::arg("max_tokens") = 32,
           py::arg("temperature") = 0.0, py::arg("top_k") = 0, py::arg("top_p") = 1.0, py::arg("seed") = 0,
           py::arg("on_text") = py::none(),
           "answer a prompt about an image / recording: {text, ids, task, prompt, stopped}; on_text(delta) streams")
      .def("__repr__", [](const Run& r) { return "braid.Run('" + r.dir() + "', task=" + task_name(r.pipeline().task) + ")"; });

  py::class_<Index>(m, "Index", "a `braid index build` directory")
      .def(py::init<std::string, py::object>(), py::arg("dir"), py::arg("run") = py::none(),
           "run: a braid.Run or a run directory embedding text/image/audio queries (default: the index's run)")
      .def("search", &Index::search, py::arg("vectors") = py::none(), py::kw_only(), py::arg("text") = py::none(),
           py::arg("image") = py::none(), py::arg("audio") = py::none(), py::arg("k") = 5, py::arg("run") = py::none(),
           "top-k hits {rank, score, id, row, path, label}: a list for one query, a list of lists for several")
      .def_property_readonly("info", &Index::info)
      .def("__len__", &Index::size);

  m.def("train", &py_train, py::arg("recipe"), py::arg("data") = "", py::arg("out") = "", py::kw_only(),
        py::arg("set") = py::none(), py::arg("resume") = false, py::arg("threads") = -1, py::arg("device") = "",
        py::arg("seed") = -1, py::arg("progress") = py::none(),
        "train a recipe into a run directory, like `braid train`; progress(record) gets each metrics.jsonl line; "
        "overrides: set={'train.max_steps': 3} or train__max_steps=3");
  m.def("load_image", [](const std::string& path, double background) {
        b::data::RawImage img;
        {
          py::gil_scoped_release nogil;
          img = b::data::decode_image_file(path, background);
        }
        py::array_t<uint8_t> a({img.height, img.width, int64_t(3)});
        std::memcpy(a.mutable_data(), img.rgb.data(), img.rgb.size());
        return a;
      }, py::arg("path"), py::arg("background") = 1.0,
      "decode an image file as braid does: uint8 RGB [H, W, 3], alpha over `background`");
  m.def("set_threads", &b::configure_threads, py::arg("threads") = 0, "intra-op threads (0 = all cores)");
}
