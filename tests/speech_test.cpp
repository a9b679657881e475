// Speech synthesis for the dataset builders (data/build/speech.h): the in-process engine (libespeak-ng,
// one forked child per utterance) must write the samples the espeak-ng program writes, for voices that
// need the program's fallback lookup, an amplitude, speeds, pitches and a text starting with '-'; and
// its failures must name the job.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "braid/data/build/common.h"
#include "braid/data/build/speech.h"
#include "test_util.h"

namespace fs = std::filesystem;
using braid::data::build::SpeechJob;

namespace {

bool have_espeak_program() { return std::system("command -v espeak-ng >/dev/null 2>&1") == 0; }

std::vector<SpeechJob> jobs_in(const fs::path& dir) {
  // "en-gb+f3" is not a voice file name: the program (and the engine) fall back to a lookup by language
  return {{"en-us", 150, 40, -1, "grinning face", (dir / "a.wav").string()},
          {"en-gb+f3", 200, 70, -1, "smiling face with open hands", (dir / "b.wav").string()},
          {"en-029+klatt", 130, 30, 150, "flag: United Kingdom", (dir / "c.wav").string()},
          {"en-us-nyc+m5", 175, 55, 40, "-1 thumbs down", (dir / "d.wav").string()},
          {"en-gb-x-rp+m2", 180, 50, -1, "1st place medal", (dir / "e.wav").string()}};
}

}  // namespace

TEST(Speech, LibraryWritesTheSamplesOfTheProgram) {
  if (braid::data::build::speech_engine() != "library") GTEST_SKIP() << "built without libespeak-ng";
  if (!have_espeak_program()) GTEST_SKIP() << "espeak-ng is not on PATH";
  braid::test::TempDir tmp;
  const fs::path lib = fs::path(tmp.path) / "lib", cli = fs::path(tmp.path) / "cli";
  fs::create_directories(lib);
  fs::create_directories(cli);
  const auto lib_jobs = jobs_in(lib), cli_jobs = jobs_in(cli);
  braid::data::build::speak_to_files(lib_jobs, 2, "library");
  std::vector<std::vector<std::string>> commands;
  for (const auto& j : cli_jobs) commands.push_back(braid::data::build::espeak_command(j));
  braid::data::build::run_commands(commands, 2, "program");
  for (size_t i = 0; i < lib_jobs.size(); ++i) {
    SCOPED_TRACE(lib_jobs[i].voice + " / " + lib_jobs[i].text);
    int64_t rate_lib = 0, rate_cli = 0;
    const auto a = braid::data::build::read_wav_mono(lib_jobs[i].wav_path, &rate_lib);
    const auto b = braid::data::build::read_wav_mono(cli_jobs[i].wav_path, &rate_cli);
    EXPECT_EQ(rate_lib, rate_cli);
    ASSERT_GT(a.size(), 1000u);
    EXPECT_EQ(a, b);  // bit for bit
  }
}

TEST(Speech, EspeakCommandCarriesEveryOption) {
  const std::vector<std::string> plain = {"espeak-ng", "-v", "en-us", "-s", "150", "-p", "40", "-w", "x.wav", "--", "-hi"};
  EXPECT_EQ(braid::data::build::espeak_command({"en-us", 150, 40, -1, "-hi", "x.wav"}), plain);
  const std::vector<std::string> loud = {"espeak-ng", "-v", "en-us", "-s", "150", "-p", "40", "-a", "120", "-w", "x.wav", "--", "hi"};
  EXPECT_EQ(braid::data::build::espeak_command({"en-us", 150, 40, 120, "hi", "x.wav"}), loud);
}

TEST(Speech, FailuresNameTheJob) {
  if (braid::data::build::speech_engine() != "library" && !have_espeak_program()) GTEST_SKIP() << "no espeak-ng";
  braid::test::TempDir tmp;
  const std::string wav = (fs::path(tmp.path) / "x.wav").string();
  try {
    braid::data::build::speak_to_files({{"xx-no-such-voice", 150, 40, -1, "hello", wav}}, 1, "bad voice");
    FAIL() << "an unknown voice was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("xx-no-such-voice"), std::string::npos) << e.what();
  }
  if (braid::data::build::speech_engine() == "library") {  // the program itself exits 0 here
    const std::string bad = (fs::path(tmp.path) / "no-such-dir" / "x.wav").string();
    try {
      braid::data::build::speak_to_files({{"en-us", 150, 40, -1, "hello", bad}}, 1, "bad path");
      FAIL() << "an unwritable path was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(Speech, HelperCanBeSwitchedOff) {  // the CLI's BRAID_ESPEAK_HELPER=0
  const std::string before = braid::data::build::speech_engine();
  braid::data::build::set_speech_helper(false);
  EXPECT_EQ(braid::data::build::speech_engine(), "cli");
  braid::data::build::set_speech_helper(true);
  EXPECT_EQ(braid::data::build::speech_engine(), before);
}
