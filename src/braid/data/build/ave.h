// braid/data/build/ave.h — the layout of the `ave` dataset (`braid data build ave`), an AVE-style
// audio-visual event localization set made from the emoji sources (docs/datasets.md, section `ave`).
//
// One manifest line is one sequence of kAveSegments one-second segments:
//   image:  a PNG grid of kAveGridCols x kAveGridCols cells of kAveFrameSide pixels; frame t is the cell at
//           row t / kAveGridCols, column t % kAveGridCols; the cells after the last frame are white. (A square
//           image, so the loader's square resize at data.image.size = kAveGridCols * kAveFrameSide keeps it.)
//   audio:  one WAV of kAveSegments seconds at kAveSampleRate Hz; segment t is [t, t + 1) s.
//   label:  the event's class (the event emoji's category); group: the event emoji's code point.
//   target: kAveSegments per-segment class ids: 0 = background, k >= 1 = ave_segment_classes()[k], equal to the
//           label's id inside the event span [start, end) and 0 outside it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace braid::data {

constexpr int64_t kAveSegments = 10;      // T: segments per sequence
constexpr int64_t kAveFrameSide = 32;     // pixels of one frame (square)
constexpr int64_t kAveGridCols = 4;       // frames per grid row (and rows: the grid is square)
constexpr int64_t kAveSampleRate = 16000; // Hz of the sequence WAV

// "background" followed by the 9 emoji categories in byte order; a target id indexes this list.
const std::vector<std::string>& ave_segment_classes();

}  // namespace braid::data
