#include <gtest/gtest.h>
#include "braid/core/config.h"
TEST(Config, UnknownKeyIsAnError) {
  auto c = braid::Config::from_string("a: 1\nb: 2\n", "r.yaml");
  EXPECT_EQ(c.get<int>("a", 0), 1);
  EXPECT_THROW(c.check_all_used(), braid::InputError);
}
