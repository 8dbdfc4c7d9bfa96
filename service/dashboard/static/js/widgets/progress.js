// A progress bar with its label: set(percent, label).

import { h } from "../dom.js";

export function progressBar() {
  const fill = h("div", { class: "fill" });
  const label = h("span", { class: "label" });
  const bar = h(
    "div",
    { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0 },
    fill,
    label,
  );
  return {
    element: bar,
    set(percent, text = `${percent.toFixed(1)} %`) {
      fill.style.width = `${Math.min(Math.max(percent, 0), 100)}%`;
      bar.setAttribute("aria-valuenow", String(percent));
      label.textContent = text;
    },
  };
}
