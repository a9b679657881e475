#include <gtest/gtest.h>

#include "braid/core/config.h"
#include "braid/core/error.h"
#include "braid/core/registry.h"
#include "braid/core/runtime.h"

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
