// Grouped bars: one group per task, one bar per model (sources, baselines, fused head, exported model).

import { s } from "../dom.js";
import { yAxis } from "./axes.js";
import { linear, niceTicks } from "./scale.js";

const BAR = 34;
const BAR_GAP = 8;
const GROUP_GAP = 48;
const PLOT_HEIGHT = 220;
const MARGIN = { top: 70, right: 16, left: 84 };
const LABEL_CHAR = 5.6;
const LABEL_SLANT = (40 * Math.PI) / 180;
const LEGEND_CHAR = 6.2;

/** groups: [{label, bars: [{label, value, kind}]}]; kinds: source, baseline, fused, exported, fallback.
 * Bars start at zero, so that their lengths compare honestly; the value above each bar gives the digits. */
export function barChart({ title, groups, legend }) {
  const values = groups.flatMap((group) => group.bars.map((bar) => bar.value)).filter((v) => v !== null);
  const labels = groups.flatMap((group) => group.bars.map((bar) => bar.label));
  // Bar labels are written in full, slanted: the chart makes room for the longest below and to the left.
  const longest = Math.max(0, ...labels.map((label) => label.length)) * LABEL_CHAR;
  const left = Math.max(MARGIN.left, longest * Math.cos(LABEL_SLANT) - GROUP_GAP / 2 + 8);
  const bottom = MARGIN.top + PLOT_HEIGHT;
  const height = bottom + 12 + longest * Math.sin(LABEL_SLANT) + 28;
  const groupWidths = groups.map((group) => group.bars.length * (BAR + BAR_GAP) - BAR_GAP);
  const barsWidth = left + groupWidths.reduce((sum, w) => sum + w + GROUP_GAP, 0) + MARGIN.right;
  const width = Math.max(barsWidth, left + legendWidth(legend) + MARGIN.right);
  const [low, high] = valueRange(values);
  const y = linear([low, high], [bottom, MARGIN.top]);

  let groupLeft = left + GROUP_GAP / 2;
  const drawn = groups.map((group, i) => {
    const g = drawGroup(group, groupLeft, y, groupWidths[i], bottom, height);
    groupLeft += groupWidths[i] + GROUP_GAP;
    return g;
  });
  return s(
    "svg",
    {
      viewBox: `0 0 ${width} ${height}`,
      class: "chart bar-chart",
      role: "img",
      "aria-label": title,
      dataset: { bars: String(values.length) },
      width,
    },
    s("title", {}, title),
    s("text", { x: left, y: 16, class: "chart-title" }, title),
    drawLegend(legend, left, 30),
    yAxis(niceTicks(low, high, 5), y, left, width - MARGIN.right),
    drawn,
  );
}

/** From zero (or the lowest negative value) to the highest value, with room above for the value labels. */
function valueRange(values) {
  const low = Math.min(0, ...values);
  const high = Math.max(0, ...values);
  const span = high - low || 1;
  return [low < 0 ? low - span * 0.08 : 0, high > 0 ? high + span * 0.12 : 0];
}

function drawGroup(group, left, y, width, bottom, height) {
  const zero = y(0);
  const bars = group.bars.map((bar, i) => {
    const x = left + i * (BAR + BAR_GAP);
    const end = bar.value === null ? zero : y(bar.value);
    const label = bar.value === null ? "–" : bar.value.toFixed(4);
    const labelY = end <= zero ? end - 5 : end + 11;
    return s(
      "g",
      { class: `bar ${bar.kind}` },
      s(
        "rect",
        {
          x,
          y: Math.min(end, zero),
          width: BAR,
          height: Math.abs(zero - end),
          dataset: { kind: bar.kind, value: label },
        },
        s("title", {}, `${group.label} · ${bar.label}: ${label}`),
      ),
      s("text", { x: x + BAR / 2, y: labelY, "text-anchor": "middle", class: "value" }, label),
      slanted(bar.label, x + BAR / 2, bottom + 12),
    );
  });
  return s(
    "g",
    { class: "group" },
    s("line", { x1: left - 4, x2: left + width + 4, y1: zero, y2: zero, class: "axis-line" }),
    bars,
    s("text", { x: left + width / 2, y: height - 8, "text-anchor": "middle", class: "group-label" }, group.label),
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

/** A label under a bar, slanted so that long names fit without overlapping their neighbours. */
function slanted(text, x, y) {
  return s("text", { x, y, "text-anchor": "end", transform: `rotate(-40 ${x} ${y})` }, text);
}
