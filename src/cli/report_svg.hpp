// Plain hand-written SVG line charts for `memento compare`: axes, ticks with labels, a
// title, a legend; no plotting dependency.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace memento::cli {

enum class AxisUnit { number, percent, bytes, seconds };

struct SvgSeries {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y), in x order
  bool steps = false;   // hold each value until the next point (a sampled counter)
  bool dashed = false;  // a reference line
  int color = -1;       // index into the palette; -1: the series' own index
};

struct SvgChart {
  std::string title;
  std::string x_label;
  std::string y_label;
  AxisUnit x_unit = AxisUnit::number;
  AxisUnit y_unit = AxisUnit::number;
  bool y_from_zero = true;  // the y axis starts at 0 (or below, for negative values)
  std::vector<SvgSeries> series;
};

/// The chart as a complete SVG document.
[[nodiscard]] std::string render_svg(const SvgChart& chart);

}  // namespace memento::cli
