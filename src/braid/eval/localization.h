// braid/eval/localization.h — scores of event localization in time (the AVE task, data/build/ave.h):
// per-segment class ids, 0 = background, k >= 1 = an event class.
//
// Segment accuracy counts segments; the event-boundary scores count events. An event is a maximal run of
// equal non-zero ids (so "3 3 5 5" is two events and "3 0 3" is two events). A predicted event is correct
// when an event of the truth in the same sequence has the same class and starts and ends within
// `tolerance` segments of it (|start - start'| <= tolerance and |end - end'| <= tolerance, end exclusive);
// each true event is matched at most once (predicted events are taken in time order, each matched to the
// earliest unmatched true event it fits). Counts are summed over all sequences before the ratios (micro).
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <cstdint>
#include <vector>

namespace braid::eval {

struct EventSpan {
  int64_t start = 0, end = 0;  // segments [start, end)
  int64_t cls = 0;             // class id (>= 1)
  bool operator==(const EventSpan& o) const { return start == o.start && end == o.end && cls == o.cls; }
};

// The events of one sequence of per-segment ids, in time order. InputError for a negative id.
std::vector<EventSpan> event_spans(const std::vector<int64_t>& segments);

struct BoundaryCounts {
  int64_t matched = 0, predicted = 0, truth = 0;
  // precision = matched / predicted (1 when nothing is predicted), recall = matched / truth (1 when the truth
  // has no event), F1 = 2PR / (P + R) (0 when P + R = 0).
  double precision() const;
  double recall() const;
  double f1() const;
};

// Matched / predicted / true events of one sequence (rules above).
BoundaryCounts match_events(const std::vector<EventSpan>& predicted, const std::vector<EventSpan>& truth,
                            int64_t tolerance);

// pred, truth: [N, T] integer per-segment ids (any integer dtype, or float holding integers, e.g. a manifest
// target). Returns {n, segments, segment_accuracy, event_segment_accuracy (over true event segments),
// background_accuracy (over true background segments), boundary_f1 / boundary_precision / boundary_recall at
// `tolerance`, boundary_f1_exact (tolerance 0), tolerance, events (true), predicted_events}. InputError for
// other shapes, mismatched shapes or non-integer ids.
nlohmann::json localization_metrics(const torch::Tensor& pred, const torch::Tensor& truth, int64_t tolerance = 1);

}  // namespace braid::eval
