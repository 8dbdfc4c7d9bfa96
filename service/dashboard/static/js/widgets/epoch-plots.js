// One chart per task of its validation metric per epoch, fed with each epoch's metrics as they come.

import { lineChart } from "../charts/line.js";
import { h } from "../dom.js";

export function epochPlots(tasks, maxEpochs) {
  const charts = new Map(
    tasks.map((task) => [
      task.name,
      lineChart({ title: `${task.name}: validation ${metricName(task.type)}`, xLabel: "epoch", xMax: maxEpochs }),
    ]),
  );
  const element = h(
    "div",
    { class: "plots" },
    [...charts].map(([name, chart]) => h("figure", { class: "plot", dataset: { task: name } }, chart.element)),
  );
  return {
    element,
    /** entry: {epoch, train_loss, validation: {task: value}} */
    add(entry) {
      for (const [task, value] of Object.entries(entry.validation)) charts.get(task)?.set(entry.epoch, value);
    },
  };
}

export function metricName(taskType) {
  return { binary: "AUC", multiclass: "accuracy", regression: "−RMSE" }[taskType] ?? "metric";
}
