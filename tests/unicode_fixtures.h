// Shared by the Uni-Code model tests: the model context of a toy image + audio + text batch
// (12 px images, 6 mel bins, a 30-token vocabulary).
#pragma once

#include "braid/models/model.h"

namespace braid::test {

inline models::ModelContext unicode_toy_context() {
  models::ModelContext ctx;
  ctx.modalities = {"image", "audio", "text"};
  ctx.task = models::Task::Align;
  ctx.encoders["image"] = {"image", 0, 12, 0, 0};
  ctx.encoders["audio"] = {"audio", 0, 0, 6, 0};
  ctx.encoders["text"] = {"text", 30, 0, 0, 0};
  return ctx;
}

}  // namespace braid::test
