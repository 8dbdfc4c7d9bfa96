// A small element builder: h("p", {class: "x"}, "text", child) for HTML, s(...) for SVG.

const SVG_NS = "http://www.w3.org/2000/svg";

export function h(tag, props = {}, ...children) {
  return build(document.createElement(tag), props, children);
}

export function s(tag, props = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

function build(element, props, children) {
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  return append(element, children);
}

/** Appends nodes and text; skips null, undefined and false, so conditional children read naturally. */
export function append(parent, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
  return parent;
}

export function replace(parent, ...children) {
  parent.replaceChildren();
  return append(parent, children);
}

/** A table from column headings and rows of cells (nodes or text); `rowProps` adds attributes per row. */
export function table(headings, rows, rowProps = () => ({})) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, headings.map((heading) => h("th", { scope: "col" }, heading)))),
    h("tbody", {}, rows.map((cells, i) => h("tr", rowProps(i), cells.map((cell) => h("td", {}, cell))))),
  );
}

/** The table of `rows`, or where there are none, a note saying what would fill it. */
export function tableOr(emptyNote, headings, rows) {
  return rows.length === 0 ? h("p", { class: "muted" }, emptyNote) : table(headings, rows);
}

export function message(kind, text, problems = []) {
  return h(
    "div",
    { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("p", {}, text),
    problems.length > 0 && h("ul", {}, problems.map((problem) => h("li", {}, problem))),
  );
}

/** A definition list from [term, value] pairs. */
export function facts(entries) {
  return h("dl", { class: "facts" }, entries.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}
