// A model's decomposition drawn as nested boxes: the top-level components stacked from input to output,
// a parallel component holding its branches side by side, a branch holding its blocks stacked.

import { s } from "../dom.js";
import { count } from "../format.js";

const LEAF_HEIGHT = 44;
const PAD = 10;
const HEADER = 34;
const GAP = 16;
const CHAR = 7;
const MIN_WIDTH = 150;

export function componentTree(components, title) {
  const root = measure({ name: title, children: components, parallel: false }, true);
  const width = root.width + 2;
  const height = root.height + 2;
  return s(
    "svg",
    {
      viewBox: `0 0 ${width} ${height}`,
      width,
      class: "component-tree",
      role: "img",
      "aria-label": `${title}: components`,
    },
    s(
      "defs",
      {},
      s(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }),
      ),
    ),
    place(root, 1, 1),
  );
}

/** Sizes every box bottom-up. The root is the model itself: no box, just its components in a column. */
function measure(component, isRoot = false) {
  const lines = isRoot ? [] : describe(component);
  const textWidth = Math.max(...lines.map((line) => line.length * CHAR), 0) + 2 * PAD;
  const children = (component.children ?? []).map((child) => measure(child));
  if (children.length === 0) {
    return { component, lines, children, width: Math.max(MIN_WIDTH, textWidth), height: LEAF_HEIGHT };
  }
  const widths = children.map((child) => child.width);
  const heights = children.map((child) => child.height);
  const across = component.parallel;
  const innerWidth = across ? sum(widths) + GAP * (children.length - 1) : Math.max(...widths);
  const innerHeight = across ? Math.max(...heights) : sum(heights) + GAP * (children.length - 1);
  const frame = isRoot ? 0 : PAD;
  return {
    component,
    lines,
    children,
    across,
    isRoot,
    width: Math.max(innerWidth + 2 * frame, isRoot ? 0 : textWidth),
    height: innerHeight + (isRoot ? 0 : HEADER + PAD),
  };
}

function place(node, x, y) {
  const box = !node.isRoot && drawBox(node, x, y);
  if (node.children.length === 0) return box;
  const top = y + (node.isRoot ? 0 : HEADER);
  const drawn = [];
  let offset = node.across ? x + (node.width - innerWidthOf(node)) / 2 : top;
  let previous = null;
  for (const child of node.children) {
    const childX = node.across ? offset : x + (node.width - child.width) / 2;
    const childY = node.across ? top : offset;
    if (!node.across && previous) {
      drawn.push(arrow(x + node.width / 2, previous.bottom, childY));
    }
    drawn.push(place(child, childX, childY));
    previous = { bottom: childY + child.height };
    offset += (node.across ? child.width : child.height) + GAP;
  }
  return s("g", { class: "container", dataset: { component: node.component.name ?? "" } }, box, drawn);
}

function innerWidthOf(node) {
  return sum(node.children.map((child) => child.width)) + GAP * (node.children.length - 1);
}

function drawBox(node, x, y) {
  const { component } = node;
  const leaf = node.children.length === 0;
  return s(
    "g",
    { class: `box role-${component.role}${leaf ? " leaf" : ""}`, dataset: { component: component.name } },
    s("rect", { x, y, width: node.width, height: node.height, rx: 6 }),
    s("title", {}, tooltip(component)),
    node.lines.map((line, i) => s("text", { x: x + PAD, y: y + 17 + i * 14, class: i === 0 ? "name" : "info" }, line)),
  );
}

function arrow(x, from, to) {
  return s("line", { x1: x, x2: x, y1: from + 1, y2: to - 1, class: "flow", "marker-end": "url(#arrow)" });
}

function describe(component) {
  const output = component.outputs.at(-1);
  const shape = output?.shape ? `[${output.shape.join(", ")}]` : "[?]";
  const kind = component.parallel ? `${component.role}, parallel` : component.role;
  // A tree ensemble's stage group: how many of its trees it sums, the boosting analogue of depth.
  const size = component.trees == null ? "" : `${count(component.trees)} tree${component.trees === 1 ? "" : "s"}, `;
  return [`${component.name} (${kind})`, `${size}${count(component.parameters)} params → ${shape}`];
}

function tooltip(component) {
  const ops = Object.entries(component.ops)
    .map(([op, n]) => (n > 1 ? `${op}×${n}` : op))
    .join(" ");
  const outputs = component.outputs.map((output) => output.name).join(", ");
  const trees = component.trees == null ? "" : `, ${count(component.trees)} trees`;
  return `${component.name}: ${count(component.parameters)} parameters${trees}\nops: ${ops}\noutputs: ${outputs}`;
}

function sum(values) {
  return values.reduce((total, value) => total + value, 0);
}
