// A line chart of one value per epoch that grows while a job runs: set(x, y) adds or moves a point.

import { replace, s } from "../dom.js";
import { xAxis, yAxis } from "./axes.js";
import { linear, niceTicks, paddedExtent } from "./scale.js";

const WIDTH = 420;
const HEIGHT = 220;
const MARGIN = { top: 30, right: 18, bottom: 40, left: 54 };

export function lineChart({ title, xLabel, xMax }) {
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart line-chart", role: "img" });
  const points = new Map();
  let lastX = Math.max(xMax, 2);

  function draw() {
    const data = [...points].filter(([, y]) => y !== null).sort(([a], [b]) => a - b);
    const left = MARGIN.left;
    const right = WIDTH - MARGIN.right;
    const bottom = HEIGHT - MARGIN.bottom;
    const x = linear([1, lastX], [left, right]);
    const [low, high] = data.length > 0 ? paddedExtent(data.map(([, value]) => value)) : [0, 1];
    const y = linear([low, high], [bottom, MARGIN.top]);
    const step = Math.ceil(lastX / 10);
    const xTicks = Array.from({ length: Math.floor((lastX - 1) / step) + 1 }, (_, i) => 1 + i * step);
    replace(
      svg,
      s("title", {}, title),
      s("text", { x: left, y: 16, class: "chart-title" }, title),
      yAxis(niceTicks(low, high, 4), y, left, right),
      xAxis(xTicks, x, bottom, left, right, xLabel),
      data.length === 0 && placeholder((left + right) / 2, (MARGIN.top + bottom) / 2),
      data.length > 1 &&
        s("polyline", { class: "series", points: data.map(([px, py]) => `${x(px)},${y(py)}`).join(" ") }),
      data.map(([px, py]) =>
        s("circle", { cx: x(px), cy: y(py), r: 3.5, class: "point" }, s("title", {}, `epoch ${px}: ${py.toFixed(4)}`)),
      ),
    );
    svg.setAttribute("aria-label", `${title}: ${data.length} points`);
    svg.dataset.points = String(data.length);
    svg.dataset.last = data.length > 0 ? String(data.at(-1)[1]) : "";
  }

  draw();
  return {
    element: svg,
    set(px, py) {
      points.set(px, py);
      lastX = Math.max(lastX, px);
      draw();
    },
  };
}

function placeholder(x, y) {
  return s("text", { x, y, "text-anchor": "middle", class: "empty" }, "waiting for the first epoch…");
}
