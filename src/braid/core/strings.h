// src/braid/core/strings.h — small string helpers C++17's std::string lacks.
#pragma once

#include <string>

namespace braid {

// s ends with suffix (C++20's std::string::ends_with).
inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace braid
