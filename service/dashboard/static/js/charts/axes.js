// Axis drawing for the charts: horizontal grid lines with value labels, and a labelled x axis.

import { s } from "../dom.js";

/** Grid lines and labels at `ticks` along the y axis, between x = left and x = right. */
export function yAxis({ ticks, digits }, y, left, right) {
  return s(
    "g",
    { class: "axis y-axis" },
    ticks.map((tick) => [
      s("line", { x1: left, x2: right, y1: y(tick), y2: y(tick), class: "grid" }),
      s("text", { x: left - 6, y: y(tick) + 3.5, "text-anchor": "end" }, tick.toFixed(digits)),
    ]),
  );
}

/** A baseline at y = bottom with a label under each tick. */
export function xAxis(ticks, x, bottom, left, right, label) {
  return s(
    "g",
    { class: "axis x-axis" },
    s("line", { x1: left, x2: right, y1: bottom, y2: bottom, class: "axis-line" }),
    ticks.map((tick) => s("text", { x: x(tick), y: bottom + 14, "text-anchor": "middle" }, tick)),
    label && s("text", { x: (left + right) / 2, y: bottom + 28, "text-anchor": "middle", class: "axis-label" }, label),
  );
}
