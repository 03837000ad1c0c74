#include "cli/report_svg.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace memento::cli {
namespace {

// Plot area inside the canvas.
constexpr double kWidth = 760, kHeight = 440;
constexpr double kLeft = 80, kRight = 210, kTop = 40, kBottom = 60;
constexpr double kPlotW = kWidth - kLeft - kRight, kPlotH = kHeight - kTop - kBottom;
constexpr std::array<const char*, 10> kPalette{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                               "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                               "#bcbd22", "#17becf"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// Ticks at 1, 2 or 5 times a power of ten, about five over [lo, hi].
std::vector<double> ticks(double lo, double hi, AxisUnit unit) {
  const double range = hi - lo;
  double raw = range / 5;
  // Bytes read better at binary steps (1, 2, 4, 8 ... MiB).
  if (unit == AxisUnit::bytes) {
    double step = std::exp2(std::ceil(std::log2(raw)));
    std::vector<double> out;
    for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push_back(v);
    return out;
  }
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
    out.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

std::string label(double v, AxisUnit unit) {
  switch (unit) {
    case AxisUnit::percent:
      return fmt::format("{:g}%", v);
    case AxisUnit::seconds:
      if (v == 0) return "0";
      if (std::abs(v) < 1e-3) return fmt::format("{:g} us", v * 1e6);
      if (std::abs(v) < 1) return fmt::format("{:g} ms", v * 1e3);
      return fmt::format("{:g} s", v);
    case AxisUnit::bytes: {
      constexpr std::array<const char*, 5> kUnits{"B", "KiB", "MiB", "GiB", "TiB"};
      std::size_t i = 0;
      while (std::abs(v) >= 1024 && i + 1 < kUnits.size()) {
        v /= 1024;
        ++i;
      }
      return fmt::format("{:g} {}", v, kUnits[i]);
    }
    case AxisUnit::number:
      break;
  }
  return fmt::format("{:g}", v);
}

}  // namespace

std::string render_svg(const SvgChart& chart) {
  // Data bounds, padded so that a flat or single-point series still has an axis.
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const SvgSeries& s : chart.series)
    for (const auto& [x, y] : s.points) {
      x0 = std::min(x0, x), x1 = std::max(x1, x);
      y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (chart.y_from_zero) y0 = std::min(y0, 0.0);
  if (x1 <= x0) x1 = x0 + (x0 == 0 ? 1 : std::abs(x0) * 0.1);
  if (y1 <= y0) y1 = y0 + (y0 == 0 ? 1 : std::abs(y0) * 0.1);
  const std::vector<double> xt = ticks(x0, x1, chart.x_unit),
                            yt = ticks(y0, y1 * 1.05, chart.y_unit);
  y1 = std::max(y1 * 1.05, yt.empty() ? y1 : yt.back());
  const auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * kPlotW; };
  const auto py = [&](double y) { return kTop + kPlotH - (y - y0) / (y1 - y0) * kPlotH; };

  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" "
      "viewBox=\"0 0 {0} {1}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{3}</text>\n",
      kWidth, kHeight, kLeft + kPlotW / 2, escape(chart.title));

  // Grid, ticks and their labels.
  for (double v : xt)
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#e0e0e0\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px(v), kTop, kTop + kPlotH + 5, kTop + kPlotH + 18, escape(label(v, chart.x_unit)));
  for (double v : yt)
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#e0e0e0\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        kLeft - 5, py(v), kLeft + kPlotW, kLeft - 8, py(v) + 4, escape(label(v, chart.y_unit)));
  // Axes and their titles.
  svg += fmt::format(
      "<path d=\"M{0} {1} V{2} H{3}\" fill=\"none\" stroke=\"black\"/>\n"
      "<text x=\"{4}\" y=\"{5}\" text-anchor=\"middle\">{6}</text>\n"
      "<text transform=\"translate(16 {7}) rotate(-90)\" text-anchor=\"middle\">{8}</text>\n",
      kLeft, kTop, kTop + kPlotH, kLeft + kPlotW, kLeft + kPlotW / 2, kHeight - 18,
      escape(chart.x_label), kTop + kPlotH / 2, escape(chart.y_label));

  // The series, then the legend (one row per labelled series, right of the plot).
  double legend_y = kTop + 10;
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const SvgSeries& s = chart.series[i];
    const char* color =
        kPalette[static_cast<std::size_t>(s.color >= 0 ? s.color : static_cast<int>(i)) %
                 kPalette.size()];
    std::string points;
    for (std::size_t k = 0; k < s.points.size(); ++k) {
      const auto& [x, y] = s.points[k];
      if (s.steps && k > 0)
        points += fmt::format("{:.1f},{:.1f} ", px(x), py(s.points[k - 1].second));
      points += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
    }
    const char* dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
    svg += fmt::format(
        "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"{} points=\"{}\"/>\n", color,
        dash, points);
    if (!s.steps && !s.dashed)
      for (const auto& [x, y] : s.points)
        svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", px(x),
                           py(y), color);
    if (s.label.empty()) continue;
    const double ly = legend_y;
    legend_y += 18;
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>"
        "<text x=\"{5}\" y=\"{6}\">{7}</text>\n",
        kLeft + kPlotW + 15, ly, kLeft + kPlotW + 40, color, dash, kLeft + kPlotW + 46, ly + 4,
        escape(s.label));
  }
  svg += "</svg>\n";
  return svg;
}

}  // namespace memento::cli
