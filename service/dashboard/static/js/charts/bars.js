// Grouped bars: one group per task, one bar per model (sources, baselines, fused head, exported model).

import { s } from "../dom.js";
import { yAxis } from "./axes.js";
import { linear, niceTicks } from "./scale.js";

const BAR = 26;
const BAR_GAP = 6;
const GROUP_GAP = 36;
const HEIGHT = 330;
const MARGIN = { top: 64, right: 16, bottom: 120, left: 54 };

/** groups: [{label, bars: [{label, value, kind}]}]; kinds: source, baseline, fused, exported, fallback. */
export function barChart({ title, groups, legend }) {
  const values = groups.flatMap((group) => group.bars.map((bar) => bar.value)).filter((v) => v !== null);
  const groupWidths = groups.map((group) => group.bars.length * (BAR + BAR_GAP) - BAR_GAP);
  const width = MARGIN.left + groupWidths.reduce((sum, w) => sum + w + GROUP_GAP, 0) + MARGIN.right;
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
  return [Math.max(min >= 0 ? 0 : -Infinity, min - span), max + span * 0.15];
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
      s("text", { x: x + BAR / 2 + 3, y: top - 4, transform: `rotate(-90 ${x + BAR / 2 + 3} ${top - 4})` }, label),
      s(
        "text",
        { x: x + BAR / 2, y: bottom + 12, "text-anchor": "end", transform: `rotate(-40 ${x + BAR / 2} ${bottom + 12})` },
        bar.label,
      ),
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
      offset += 22 + label.length * 6.2;
      return item;
    }),
  );
}
