// braid/core/error.h — the two kinds of failure braid reports.
//
// InputError: the user's input is wrong (a manifest line, an image file, a recipe key,
// a command-line value). Its message is one line that names the file and line or the
// key, and says what was expected. The CLI prints it and exits with code 2.
// Anything else (std::exception, c10::Error) is a bug or an environment failure: exit 1.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace braid {

class InputError : public std::runtime_error {
 public:
  explicit InputError(const std::string& msg) : std::runtime_error(msg) {}
};

// Thrown when the user interrupts (Ctrl-C); the CLI exits 130.
class Interrupted : public std::runtime_error {
 public:
  Interrupted() : std::runtime_error("interrupted") {}
};

template <typename... Args>
[[noreturn]] void input_error(fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace braid

// Check a condition on user input; on failure throw InputError with the formatted message.
#define BRAID_INPUT_CHECK(cond, ...)       \
  do {                                     \
    if (!(cond)) ::braid::input_error(__VA_ARGS__); \
  } while (0)
