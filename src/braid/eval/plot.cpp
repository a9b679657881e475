#include "braid/eval/plot.h"

#include <fmt/format.h>

#include <algorithm>

namespace braid::eval {

static std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else o += c;
  }
  return o;
}

std::string svg_line_chart(const std::string& title, const std::string& xlabel, const std::string& ylabel,
                           const std::vector<Series>& series, double ymin, double ymax) {
  const double W = 760, H = 420, L = 60, R = 190, T = 40, B = 50;
  double xmin = 1e300, xmax = -1e300;
  for (const auto& s : series)
    for (double x : s.x) xmin = std::min(xmin, x), xmax = std::max(xmax, x);
  if (xmin > xmax) xmin = 0, xmax = 1;
  if (xmax == xmin) xmax = xmin + 1;
  auto px = [&](double x) { return L + (x - xmin) / (xmax - xmin) * (W - L - R); };
  auto py = [&](double y) { return H - B - (std::clamp(y, ymin, ymax) - ymin) / (ymax - ymin) * (H - T - B); };
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                 "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"};
  std::string o = fmt::format(R"svg(<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="12">)svg", W, H);
  o += fmt::format(R"svg(<rect width="{}" height="{}" fill="white"/>)svg", W, H);
  o += fmt::format(R"svg(<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>)svg", (W - R + L) / 2, esc(title));
  for (int i = 0; i <= 5; ++i) {
    double y = ymin + (ymax - ymin) * i / 5;
    o += fmt::format(R"svg(<line x1="{}" y1="{:.1f}" x2="{}" y2="{:.1f}" stroke="#ddd"/>)svg", L, py(y), W - R, py(y));
    o += fmt::format(R"svg(<text x="{}" y="{:.1f}" text-anchor="end">{:.2f}</text>)svg", L - 6, py(y) + 4, y);
  }
  for (int i = 0; i <= 5; ++i) {
    double x = xmin + (xmax - xmin) * i / 5;
    o += fmt::format(R"svg(<text x="{:.1f}" y="{}" text-anchor="middle">{:.2g}</text>)svg", px(x), H - B + 16, x);
  }
  o += fmt::format(R"svg(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="black"/>)svg", L, H - B, W - R, H - B);
  o += fmt::format(R"svg(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="black"/>)svg", L, T, L, H - B);
  o += fmt::format(R"svg(<text x="{}" y="{}" text-anchor="middle">{}</text>)svg", (W - R + L) / 2, H - 12, esc(xlabel));
  o += fmt::format(R"svg(<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>)svg", (H - B + T) / 2,
                   (H - B + T) / 2, esc(ylabel));
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const char* c = colors[k % 15];
    std::string pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) pts += fmt::format("{:.1f},{:.1f} ", px(s.x[i]), py(s.y[i]));
    o += fmt::format(R"svg(<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>)svg", c, pts);
    double ly = T + 14 + 16 * k;
    o += fmt::format(R"svg(<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="3"/>)svg", W - R + 12, ly - 4,
                     W - R + 32, ly - 4, c);
    o += fmt::format(R"svg(<text x="{}" y="{}">{}</text>)svg", W - R + 38, ly, esc(s.name));
  }
  return o + "</svg>\n";
}

}  // namespace braid::eval
