// The final report: per task, each source model vs the fused model vs any baselines, as a table and as bars.

import { barChart } from "../charts/bars.js";
import { h, table } from "../dom.js";
import { count, metric } from "../format.js";

const LEGEND = [
  { kind: "source", label: "source model" },
  { kind: "baseline", label: "baseline" },
  { kind: "fused", label: "fused head" },
  { kind: "exported", label: "exported" },
  { kind: "fallback", label: "exported, fallback" },
];

/** Rows of one task's report, in reading order: sources, baselines, the fused head, the exported model. */
export function reportRows(task) {
  const rows = [
    ...Object.entries(task.sources).map(([name, score]) => ({ model: name, kind: "source", score })),
    ...Object.entries(task.baselines).map(([name, score]) => ({ model: name, kind: "baseline", score })),
    { model: "fused head", kind: "fused", score: task.fused },
  ];
  const fellBack = task.answered_by !== "fused";
  rows.push({
    model: "exported model",
    kind: fellBack ? "fallback" : "exported",
    score: task.exported,
    note: fellBack ? `fallback: answered by ${task.answered_by}` : "answered by the fused head",
  });
  return rows;
}

export function reportTable(report) {
  const rows = report.tasks.flatMap((task) => reportRows(task).map((row) => ({ task, ...row })));
  const hasTest = rows.some((row) => row.score.test !== null && row.score.test !== undefined);
  // Source models are also scored on the first training rows: far better there than on validation means
  // they were trained on them (the report's warnings say so).
  const hasTrain = rows.some((row) => row.score.train !== null && row.score.train !== undefined);
  const headings = [
    "task", "model", "kind", "validation", ...(hasTest ? ["test"] : []), ...(hasTrain ? ["train"] : []), "",
  ];
  const cells = rows.map(({ task, model, kind, score, note }) => [
    task.task,
    model,
    h("span", { class: `kind ${kind}` }, kind),
    metric(score.validation),
    ...(hasTest ? [metric(score.test)] : []),
    ...(hasTrain ? [kind === "source" ? metric(score.train) : ""] : []),
    note ?? "",
  ]);
  const element = table(headings, cells, (i) => ({
    class: `kind-${rows[i].kind}`,
    dataset: { task: rows[i].task.task, model: rows[i].model, kind: rows[i].kind },
  }));
  element.classList.add("report");
  // A baseline that failed is left out of the table; the fused model was exported all the same.
  const failed = Object.entries(report.baseline_failures ?? {}).map(([kind, why]) =>
    h("p", { class: "muted baseline-failure", dataset: { baseline: kind } }, `baseline ${kind} failed: ${why}`),
  );
  const warnings = (report.seen_rows_warnings ?? []).map((line) =>
    h("p", { class: "seen-rows-warning" }, `warning: ${line}`),
  );
  const described = [h("p", { class: "muted" }, summary(report)), ...warnings, ...failed];
  return h("div", { class: "table-wrap" }, element, ...described);
}

export function reportChart(report) {
  const groups = report.tasks.map((task) => ({
    label: `${task.task} (${task.metric})`,
    bars: reportRows(task).map((row) => ({
      label: row.kind === "fallback" ? `exported (${task.answered_by})` : row.model,
      value: row.score.validation,
      kind: row.kind,
    })),
  }));
  const shown = new Set(groups.flatMap((group) => group.bars.map((bar) => bar.kind)));
  const legend = LEGEND.filter(({ kind }) => shown.has(kind));
  return barChart({ title: "Validation metric per task", groups, legend });
}

function summary(report) {
  const fallbacks = Object.entries(report.fallbacks ?? {});
  return [
    `strategy ${report.strategy}, best epoch ${report.best_epoch} of ${report.epochs_run}`,
    `training ${report.training_seconds.toFixed(1)} s, total ${report.total_seconds.toFixed(1)} s`,
    `parameters trainable ${count(report.trainable_parameters)} of ${count(report.total_parameters)}`,
    `export max abs diff ${report.export_max_abs_diff.toExponential(1)}`,
    fallbacks.length > 0
      ? `fallbacks: ${fallbacks.map(([task, source]) => `${task} → ${source}`).join(", ")}`
      : "no fallbacks",
  ].join(" · ");
}
