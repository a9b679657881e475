#include <gtest/gtest.h>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/fs.h"
#include "braid/core/registry.h"
#include "braid/core/runtime.h"
#include "test_util.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

using braid::Config;
using braid::InputError;

static std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "<no InputError>";
}

TEST(Config, TypedReadsDefaultsAndResolvedDump) {
  auto c = Config::from_string("train: {lr: 0.01, epochs: 3}\nname: x\n", "r.yaml");
  EXPECT_DOUBLE_EQ(c.at("train").get<double>("lr", 1.0), 0.01);
  EXPECT_EQ(c.at("train").get<int64_t>("epochs", 1), 3);
  EXPECT_EQ(c.at("train").get<int64_t>("warmup", 7), 7);  // default written back
  EXPECT_EQ(c.get<std::string>("name", ""), "x");
  EXPECT_NO_THROW(c.check_all_used());
  auto again = Config::from_string(c.dump(), "dump");
  EXPECT_EQ(again.at("train").get<int64_t>("warmup", 0), 7);
}

TEST(Config, UnknownKeyNamesItsFullPath) {
  auto c = Config::from_string("train: {lr: 0.01, epohcs: 3}\n", "r.yaml");
  c.at("train").get<double>("lr", 1.0);
  auto msg = message_of([&] { c.check_all_used(); });
  EXPECT_NE(msg.find("r.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("train.epohcs"), std::string::npos) << msg;
}

TEST(Config, WrongTypeNamesKeyAndExpectation) {
  auto c = Config::from_string("train: {lr: fast}\n", "r.yaml");
  auto msg = message_of([&] { c.at("train").get<double>("lr", 1.0); });
  EXPECT_NE(msg.find("train.lr"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected a number"), std::string::npos) << msg;
  EXPECT_NE(msg.find("fast"), std::string::npos) << msg;
}

TEST(Config, SetPathParsesYamlValues) {
  auto c = Config::from_string("model: {modalities: [image]}\n", "r.yaml");
  c.set_path("model.modalities", "[image, text]");
  c.set_path("train.lr", "0.5");
  EXPECT_EQ(c.at("model").get<std::vector<std::string>>("modalities", {}).size(), 2u);
  EXPECT_DOUBLE_EQ(c.at("train").get<double>("lr", 0.0), 0.5);
  EXPECT_THROW(c.set_path("model.modalities.x", "1"), InputError);  // not a map
}

TEST(Config, InvalidYamlNamesLine) {
  auto msg = message_of([] { Config::from_string("a: 1\nb: [unclosed\n", "bad.yaml"); });
  EXPECT_NE(msg.find("bad.yaml:"), std::string::npos) << msg;
}

TEST(Registry, UnknownNameListsKnownOnes) {
  braid::Registry<int> r("widget");
  r.add("alpha", "doc", [](const Config&) { return 1; });
  r.add("beta", "doc", [](const Config&) { return 2; });
  auto c = Config::from_string("name: gamma\n", "r.yaml");
  auto msg = message_of([&] { r.make(c); });
  EXPECT_NE(msg.find("unknown widget 'gamma'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("alpha, beta"), std::string::npos) << msg;
  EXPECT_EQ(r.make(Config::from_string("name: beta\n")), 2);
}

TEST(Runtime, MixSeedIsDeterministicAndSpreads) {
  EXPECT_EQ(braid::mix_seed(1, 2, 3), braid::mix_seed(1, 2, 3));
  EXPECT_NE(braid::mix_seed(1, 2, 3), braid::mix_seed(1, 2, 4));
  EXPECT_NE(braid::mix_seed(0), braid::mix_seed(1));
}

// A failed write (a full disk, a file size limit) throws one line naming the target and why, leaves
// the old target byte for byte and no temporary file beside it.
static std::string atomic_write_error(const std::string& path, const std::string& text) {
  try {
    braid::atomic_write_text(path, text);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "<no error>";
}

static size_t files_in(const std::string& dir) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) n += e.path().empty() ? 0 : 1;
  return n;
}

TEST(AtomicWrite, FullDiskKeepsTheOldFileAndNamesIt) {
  braid::test::TempDir d("atomic_full");
  const std::string path = d.file("ckpt.json");
  braid::atomic_write_text(path, "old contents\n");
  // The temporary file braid writes is `<path>.tmp.<pid>`: make it lead to /dev/full (every write: ENOSPC).
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  ASSERT_EQ(::symlink("/dev/full", tmp.c_str()), 0);
  const std::string msg = atomic_write_error(path, std::string(1 << 20, 'x'));
  EXPECT_NE(msg.find(path + ": write failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  const std::string now = braid::test::read_file(path);
  EXPECT_TRUE(now == "old contents\n") << "the target now holds " << now.size() << " bytes";
  EXPECT_EQ(files_in(d.path.string()), 1u) << "the temporary file was left behind";
  struct stat st;
  ASSERT_EQ(::stat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
}

TEST(AtomicWrite, ShortWriteUnderAFileSizeLimitIsAnError) {
  braid::test::TempDir d("atomic_fsize");
  const std::string path = d.file("summary.json");
  braid::atomic_write_text(path, "old contents\n");
  // A file size limit of 64 KB: the write of 1 MB stops short (then EFBIG), as on a disk that fills up.
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 64 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string msg = atomic_write_error(path, std::string(1 << 20, 'y'));
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_NE(msg.find(path + ": write failed after 65536 of 1048576 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("File too large"), std::string::npos) << msg;
  const std::string now = braid::test::read_file(path);
  EXPECT_TRUE(now == "old contents\n") << "the target now holds " << now.size() << " bytes";
  EXPECT_EQ(files_in(d.path.string()), 1u) << "the temporary file was left behind";
}

TEST(AtomicWrite, WriterThatLeavesNoFileIsAnErrorNamingTheTarget) {
  braid::test::TempDir d("atomic_nofile");
  const std::string path = d.file("index.faiss");
  braid::atomic_write_text(path, "old");
  std::string msg;
  try {
    braid::atomic_write(path, [](const std::string&) {});
  } catch (const std::exception& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find(path + ".tmp."), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file"), std::string::npos) << msg;
  EXPECT_EQ(braid::test::read_file(path), "old");
}
