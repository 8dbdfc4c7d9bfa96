// Grouped bars: one group per task, one bar per model (sources, baselines, fused head, exported model).

import { s } from "../dom.js";
import { yAxis } from "./axes.js";
import { linear, niceTicks } from "./scale.js";

const BAR = 34;
const BAR_GAP = 8;
const GROUP_GAP = 48;
const HEIGHT = 360;
const MARGIN = { top: 70, right: 16, bottom: 124, left: 84 };
const LABEL_CHARS = 18;
const LEGEND_CHAR = 6.2;

/** groups: [{label, bars: [{label, value, kind}]}]; kinds: source, baseline, fused, exported, fallback. */
export function barChart({ title, groups, legend }) {
  const values = groups.flatMap((group) => group.bars.map((bar) => bar.value)).filter((v) => v !== null);
  const groupWidths = groups.map((group) => group.bars.length * (BAR + BAR_GAP) - BAR_GAP);
  const barsWidth = MARGIN.left + groupWidths.reduce((sum, w) => sum + w + GROUP_GAP, 0) + MARGIN.right;
  const width = Math.max(barsWidth, MARGIN.left + legendWidth(legend) + MARGIN.right);
  const bottom = HEIGHT - MARGIN.bottom;
  const [low, high] = valueRange(values);
  const y = linear([low, high], [bottom, MARGIN.top]);

  let left = MARGIN.left + GROUP_GAP / 2;
  const drawn = groups.map((group, i) => {
    const g = drawGroup(group, left, bottom, y, groupWidths[i]);
    left += groupWidths[i] + GROUP_GAP;
    return g;
  });
  return s(
    "svg",
    {
      viewBox: `0 0 ${width} ${HEIGHT}`,
      class: "chart bar-chart",
      role: "img",
      "aria-label": title,
      dataset: { bars: String(values.length) },
      width,
    },
    s("title", {}, title),
    s("text", { x: MARGIN.left, y: 16, class: "chart-title" }, title),
    drawLegend(legend, MARGIN.left, 30),
    yAxis(niceTicks(low, high, 4), y, MARGIN.left, width - MARGIN.right),
    drawn,
  );
}

/** The value axis starts near the smallest value, not at 0: metrics of one task differ in the third digit. */
function valueRange(values) {
  if (values.length === 0) return [0, 1];
  const min = Math.min(...values);
  const max = Math.max(...values);
  const span = max - min || Math.abs(max) * 0.05 || 0.05;
  const low = min - span;
  return [min >= 0 ? Math.max(low, 0) : low, max + span * 0.15];
}

function drawGroup(group, left, bottom, y, width) {
  const bars = group.bars.map((bar, i) => {
    const x = left + i * (BAR + BAR_GAP);
    const top = bar.value === null ? bottom : y(bar.value);
    const label = bar.value === null ? "–" : bar.value.toFixed(4);
    return s(
      "g",
      { class: `bar ${bar.kind}` },
      s(
        "rect",
        { x, y: top, width: BAR, height: Math.max(bottom - top, 0), dataset: { kind: bar.kind, value: label } },
        s("title", {}, `${group.label} · ${bar.label}: ${label}`),
      ),
      s("text", { x: x + BAR / 2, y: top - 5, "text-anchor": "middle", class: "value" }, label),
      slanted(shorten(bar.label), x + BAR / 2, bottom + 12),
    );
  });
  return s(
    "g",
    { class: "group" },
    s("line", { x1: left - 4, x2: left + width + 4, y1: bottom, y2: bottom, class: "baseline" }),
    bars,
    s("text", { x: left + width / 2, y: HEIGHT - 8, "text-anchor": "middle", class: "group-label" }, group.label),
  );
}

function drawLegend(entries, x, y) {
  let offset = x;
  return s(
    "g",
    { class: "legend" },
    entries.map(({ kind, label }) => {
      const item = s(
        "g",
        { class: `bar ${kind}` },
        s("rect", { x: offset, y: y - 9, width: 10, height: 10 }),
        s("text", { x: offset + 14, y }, label),
      );
      offset += legendItemWidth(label);
      return item;
    }),
  );
}

function legendItemWidth(label) {
  return 24 + label.length * LEGEND_CHAR;
}

function legendWidth(entries) {
  return entries.reduce((total, { label }) => total + legendItemWidth(label), 0);
}

function shorten(label) {
  return label.length > LABEL_CHARS ? `${label.slice(0, LABEL_CHARS - 1)}…` : label;
}

/** A label under a bar, slanted so that long names fit. */
function slanted(text, x, y) {
  return s("text", { x, y, "text-anchor": "end", transform: `rotate(-40 ${x} ${y})` }, text);
}
