// braid/eval/plot.h — small self-contained SVG line charts for reports.
#pragma once

#include <string>
#include <vector>

namespace braid::eval {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// A line chart with axes, ticks, a legend and a title; returns the SVG text.
std::string svg_line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                           const std::vector<Series>& series, double ymin = 0.0, double ymax = 1.0);

}  // namespace braid::eval
