// "Try it": one record in a form, sent to POST /v1/predict/{name}; each task's prediction shown.

import { api } from "../api.js";
import { h, message, replace, table } from "../dom.js";

/**
 * deployment: a /v1/deployments item (name, input_columns); columns: the training dataset's column
 * statistics, for starting values (a category's smallest id, the middle of a number's range).
 */
export async function tryIt(deployment, columns, signal) {
  const metadata = await api(`/v2/models/${encodeURIComponent(deployment.name)}`, { signal });
  const stats = new Map(columns.map((column) => [column.name, column]));
  const fields = recordFields(metadata.inputs, deployment.input_columns, stats);
  const result = h("div", { class: "predictions", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "try-it", novalidate: true },
    h(
      "div",
      { class: "fields" },
      fields.map((field) =>
        h(
          "label",
          {},
          h("span", { title: field.column }, field.column),
          h("input", {
            type: "number",
            name: field.column,
            step: field.integer ? 1 : "any",
            value: startingValue(stats.get(field.column), field.integer),
            required: true,
          }),
        ),
      ),
    ),
    h("button", { type: "submit" }, "Predict"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const record = Object.fromEntries(fields.map((field) => [field.column, Number(form.elements[field.column].value)]));
    replace(result, h("p", { class: "muted" }, "Predicting…"));
    try {
      const answer = await api(`/v1/predict/${encodeURIComponent(deployment.name)}`, {
        method: "POST",
        body: { records: [record] },
      });
      replace(result, predictionTable(answer));
    } catch (error) {
      replace(result, message("error", error.message, error.problems));
    }
  });
  return h("div", {}, form, result);
}

/**
 * The record's columns, each once, in the model's input order. A column takes whole numbers when any input
 * reads it as ids (INT*), or when the data holds integers there: a tree model reads category ids as floats
 * in one FP32 tensor, beside a neural model embedding the same column.
 */
function recordFields(inputs, inputColumns, stats) {
  const fields = new Map();
  for (const input of inputs) {
    for (const column of inputColumns[input.name] ?? [input.name]) {
      const integer = /^U?INT/.test(input.datatype) || Boolean(stats.get(column)?.integer_valued);
      const known = fields.get(column);
      if (known) known.integer ||= integer;
      else fields.set(column, { column, integer });
    }
  }
  return [...fields.values()];
}

function startingValue(stats, integer) {
  if (!stats || stats.min === null) return 0;
  return integer ? stats.min : Number(((stats.min + stats.max) / 2).toPrecision(4));
}

function predictionTable(answer) {
  const [prediction] = answer.predictions;
  const rows = Object.entries(prediction).map(([task, value]) => [
    task,
    h("output", { dataset: { task, value: JSON.stringify(value) } }, show(value)),
  ]);
  return h(
    "div",
    {},
    h("p", { class: "muted" }, `${answer.model_name}, version ${answer.model_version}`),
    table(["task", "prediction"], rows),
  );
}

function show(value) {
  return Array.isArray(value) ? value.map((p) => p.toFixed(4)).join(", ") : value.toFixed(4);
}
