// TensorBoard event files (core/tensorboard.h): braid's reader against a file written by
// torch.utils.tensorboard.SummaryWriter (tests/fixtures/tensorboard, scripts/make_tb_fixture.py),
// braid's writer byte for byte against the same file, corrupt and truncated files, and the event
// file a training run leaves beside metrics.jsonl.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <tuple>

#include "braid/core/error.h"
#include "braid/core/tensorboard.h"
#include "braid/run/run_dir.h"
#include "test_util.h"

using namespace braid::test;
namespace tb = braid::tb;

namespace {

std::string fixture(const std::string& name) { return std::string(BRAID_FIXTURES) + "/tensorboard/" + name; }

// Byte offsets of the records of an event file, from the length fields alone (no CRC checks).
std::vector<size_t> record_offsets(const std::string& bytes) {
  std::vector<size_t> out;
  size_t pos = 0;
  while (pos + 12 <= bytes.size()) {
    uint64_t len;
    std::memcpy(&len, bytes.data() + pos, 8);
    out.push_back(pos);
    pos += 12 + len + 4;
  }
  EXPECT_EQ(pos, bytes.size()) << "record lengths do not add up to the file size";
  return out;
}

}  // namespace

TEST(TensorBoard, Crc32cKnownValues) {
  // RFC 3720 B.4 / the "check" value of CRC-32C
  EXPECT_EQ(tb::crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(tb::crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
}

TEST(TensorBoard, ReadsSummaryWriterFixture) {
  const auto want = nlohmann::json::parse(read_file(fixture("expected.json")));
  const auto got = tb::read_events(fixture("summary_writer.tfevents"));
  EXPECT_EQ(got.file_version, want["file_version"].get<std::string>());
  EXPECT_GT(got.file_version_wall_time, 1.6e9);
  EXPECT_TRUE(got.session_starts.empty());
  const auto& ws = want["scalars"];
  ASSERT_EQ(got.scalars.size(), ws.size());
  EXPECT_EQ(got.records, static_cast<int64_t>(ws.size()) + 1);
  for (size_t i = 0; i < ws.size(); ++i) {
    SCOPED_TRACE("scalar " + std::to_string(i));
    EXPECT_EQ(got.scalars[i].tag, ws[i]["tag"].get<std::string>());
    EXPECT_EQ(got.scalars[i].step, ws[i]["step"].get<int64_t>());
    EXPECT_EQ(got.scalars[i].value, ws[i]["value"].get<float>());  // exact: both are the same float32
    EXPECT_EQ(got.scalars[i].wall_time, ws[i]["wall_time"].get<double>());
  }
}

TEST(TensorBoard, WriterMatchesSummaryWriterBytesAndRoundTrips) {
  TempDir dir("tb");
  const std::string path = dir.file("events.test");
  const auto want = nlohmann::json::parse(read_file(fixture("expected.json")));
  {
    tb::EventWriter w(path);
    for (const auto& s : want["scalars"])
      w.add_scalar(s["tag"].get<std::string>(), s["value"].get<double>(), s["step"].get<int64_t>(),
                   s["wall_time"].get<double>());
  }
  // Every record after the file_version one (whose wall_time is "now") equals SummaryWriter's.
  const std::string mine = read_file(path), ref = read_file(fixture("summary_writer.tfevents"));
  const auto om = record_offsets(mine), orf = record_offsets(ref);
  ASSERT_EQ(om.size(), orf.size());
  ASSERT_GE(om.size(), 2u);
  for (size_t i = 1; i < om.size(); ++i) {
    const size_t me = i + 1 < om.size() ? om[i + 1] : mine.size(), re = i + 1 < orf.size() ? orf[i + 1] : ref.size();
    EXPECT_EQ(mine.substr(om[i], me - om[i]), ref.substr(orf[i], re - orf[i]))
        << "record " << i + 1 << " differs from SummaryWriter's";
  }

  // Round trip, several values per event and a session start.
  const std::string rt = dir.file("events.rt");
  double before = tb::now_seconds();
  {
    tb::EventWriter w(rt);
    w.start_session(40);
    w.add_scalars(41, {{"train/loss", 0.5}, {"train/lr", 2e-4}, {"train/grad_norm", 7.25}});
    w.add_scalar("val/accuracy", 0.875, 42);
  }
  auto got = tb::read_events(rt);
  EXPECT_EQ(got.file_version, "brain.Event:2");
  EXPECT_GE(got.file_version_wall_time, before - 1);
  EXPECT_LE(got.file_version_wall_time, tb::now_seconds() + 1);
  EXPECT_EQ(got.records, 4);
  EXPECT_EQ(got.session_starts, std::vector<int64_t>{40});
  ASSERT_EQ(got.scalars.size(), 4u);
  std::vector<std::tuple<int64_t, std::string, float>> seen, expect = {
      {41, "train/loss", 0.5f}, {41, "train/lr", 2e-4f}, {41, "train/grad_norm", 7.25f}, {42, "val/accuracy", 0.875f}};
  for (const auto& s : got.scalars) seen.emplace_back(s.step, s.tag, s.value);
  EXPECT_EQ(seen, expect);
  EXPECT_EQ(got.scalars[0].wall_time, got.scalars[1].wall_time);  // one event

  // An event file is never rewritten.
  EXPECT_THROW(tb::EventWriter{rt}, std::runtime_error);
  EXPECT_EQ(tb::read_events(rt).records, 4);
}

TEST(TensorBoard, CorruptOrTruncatedRecordIsInputError) {
  TempDir dir("tb");
  const std::string ref = read_file(fixture("summary_writer.tfevents"));
  const auto off = record_offsets(ref);
  ASSERT_GE(off.size(), 5u);
  auto variant = [&](const std::string& name, std::string bytes) {
    const std::string p = dir.file(name);
    write_file(p, bytes);
    return p;
  };
  {  // a flipped byte inside record 3's data (its tag)
    std::string b = ref;
    b[off[2] + 12 + 20] ^= 0x01;
    auto p = variant("data_flip", b);
    ExpectInputError([&] { tb::read_events(p); }, p, "record 3 (");
    ExpectInputError([&] { tb::read_events(p); }, p, "data CRC");
  }
  {  // a flipped bit in record 4's length field
    std::string b = ref;
    b[off[3]] ^= 0x04;
    auto p = variant("len_flip", b);
    ExpectInputError([&] { tb::read_events(p); }, p, "record 4 (");
    ExpectInputError([&] { tb::read_events(p); }, p, "length CRC");
  }
  {  // a flipped byte in record 5's data CRC
    std::string b = ref;
    b[off[5] - 2] ^= 0x80;
    auto p = variant("crc_flip", b);
    ExpectInputError([&] { tb::read_events(p); }, p, "record 5 (");
  }
  const size_t n = off.size();
  {  // the file cut inside its last record's data
    auto p = variant("cut_data", ref.substr(0, ref.size() - 6));
    ExpectInputError([&] { tb::read_events(p); }, p, "record " + std::to_string(n) + " (");
    ExpectInputError([&] { tb::read_events(p); }, p, "truncated");
  }
  {  // ... and inside its last record's header
    auto p = variant("cut_header", ref.substr(0, off[n - 1] + 5));
    ExpectInputError([&] { tb::read_events(p); }, p, "record " + std::to_string(n) + " (");
    ExpectInputError([&] { tb::read_events(p); }, p, "truncated");
  }
  {  // a record whose CRCs are right but whose Event is not a protobuf message
    std::string data = "\x0a\x7f" "abc";  // field 1 length-delimited, 127 bytes announced, 3 present
    std::string rec(8, '\0');
    uint64_t len = data.size();
    std::memcpy(rec.data(), &len, 8);
    uint32_t c = tb::masked_crc32c(rec.data(), 8);
    rec.append(reinterpret_cast<const char*>(&c), 4);
    rec += data;
    c = tb::masked_crc32c(data.data(), data.size());
    rec.append(reinterpret_cast<const char*>(&c), 4);
    auto p = variant("bad_proto", ref.substr(0, off[1]) + rec);
    ExpectInputError([&] { tb::read_events(p); }, p, "record 2 (");
  }
  EXPECT_EQ(tb::read_events(variant("intact", ref)).records, static_cast<int64_t>(n));
}

namespace {

const char* kRecipe = R"(
task: classify
seed: 5
threads: 1
data:
  workers: 1
  image: {size: 16}
  text: {vocab: 40}
model:
  name: fusion_classifier
  modalities: [image, text]
  encoders:
    image: {name: image_cnn, channels: [4], dim: 8}
    text: {name: text_bow, embed: 8, dim: 8}
  head: {hidden: [8]}
train: {epochs: 2, batch_size: 8, lr: 0.01, warmup_steps: 2, checkpoint_every: 4, eval_every: 3}
)";

}  // namespace

TEST(TensorBoard, TrainingRunWritesMetricsAsScalars) {
  Dataset d;
  TempDir tmp("tbtrain");
  d.dir = tmp.path.string();
  ToyOptions o;
  o.n = 48;
  o.audio = false;
  d.manifest = make_toy_dataset(d.dir + "/data", o);
  d.recipe = tmp.file("recipe.yaml", kRecipe);
  const std::string run = d.dir + "/run";
  auto r = run_braid(train_args(d, run));
  ASSERT_EQ(r.code, 0) << r.err;

  braid::run::RunDir rd(run);
  auto files = rd.tensorboard_files();
  ASSERT_EQ(files.size(), 1u);
  const std::string first_bytes = read_file(files[0]);
  auto ev = tb::read_events(files[0]);
  EXPECT_EQ(ev.file_version, "brain.Event:2");
  EXPECT_EQ(ev.session_starts, std::vector<int64_t>{1});
  std::map<std::pair<std::string, int64_t>, float> scalars;
  for (const auto& s : ev.scalars)
    EXPECT_TRUE(scalars.emplace(std::make_pair(s.tag, s.step), s.value).second) << "duplicate " << s.tag << " " << s.step;

  // Every number of every metrics.jsonl line is a scalar at the line's step, and nothing else is.
  size_t expected = 0, train_lines = 0, val_lines = 0;
  for (const auto& j : read_jsonl(rd.metrics())) {
    const int64_t step = j.at("step").get<int64_t>();
    const std::string group = j.contains("split") ? j["split"].get<std::string>() : "train";
    (group == "train" ? train_lines : val_lines)++;
    for (const auto& [k, v] : j.items()) {
      if (!v.is_number() || k == "step" || k == "epoch") continue;
      ++expected;
      auto it = scalars.find({group + "/" + k, step});
      ASSERT_NE(it, scalars.end()) << group << "/" << k << " at step " << step << " is missing";
      EXPECT_EQ(it->second, static_cast<float>(v.get<double>())) << group << "/" << k << " at step " << step;
    }
  }
  EXPECT_EQ(scalars.size(), expected);
  EXPECT_GE(train_lines, 8u);
  EXPECT_GE(val_lines, 3u);
  EXPECT_TRUE(scalars.count({"train/loss", 1}));
  EXPECT_TRUE(scalars.count({"train/lr", 1}));
  EXPECT_TRUE(scalars.count({"train/grad_norm", 1}));
  EXPECT_TRUE(scalars.count({"val/accuracy", 3}));

  // A resume adds a file that sorts after the first and starts a session after its checkpoint's
  // step (TensorBoard then drops older files' steps from there on); the first file is left as it was.
  const int64_t steps = last_logged_step(rd.metrics());
  r = run_braid(train_args(d, run) + " --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  files = rd.tensorboard_files();
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(read_file(files[0]), first_bytes);
  auto again = tb::read_events(files[1]);
  EXPECT_EQ(again.session_starts, std::vector<int64_t>{steps + 1});

  // train.tensorboard: false writes none.
  const std::string off = d.dir + "/off";
  r = run_braid(train_args(d, off) + " --set train.tensorboard=false --set train.epochs=1");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(braid::run::RunDir(off).tensorboard_files().empty());
  EXPECT_FALSE(read_jsonl(braid::run::RunDir(off).metrics()).empty());
}
