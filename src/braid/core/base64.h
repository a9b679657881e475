// braid/core/base64.h — RFC 4648 base64 with padding (data: URIs of the server's drawn images and of the
// report's inlined images).
#pragma once

#include <string>
#include <string_view>

namespace braid {

std::string base64(std::string_view bytes);

}  // namespace braid
