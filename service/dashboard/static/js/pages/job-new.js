// Starting a fusion job: the data, the source models per task, the strategy and a few hyper-parameters.

import { api } from "../api.js";
import { h, message, replace } from "../dom.js";
import { count } from "../format.js";

const STRATEGIES = {
  frozen: "frozen: source components computed once; fastest",
  adaptive: "adaptive: the fused state fed back into deeper components",
  finetune: "finetune: adaptive, with the source models trained too",
};
const BASELINES = { shared_bottom: "Shared-Bottom", mmoe: "MMoE", ple: "PLE" };

export async function render(root, { signal }) {
  const [models, datasets] = await Promise.all([
    api("/v1/models?limit=500", { signal }),
    api("/v1/datasets?limit=500", { signal }),
  ]);
  const tasks = groupByTask(models.items);
  const status = h("div", {});
  const form = h(
    "form",
    { class: "new-job card" },
    h("h1", {}, "New fusion job"),
    field(
      "Name (the fused model is deployed under it)",
      input("name", "text", "fused", { required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*" }),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Data"),
      field("Training dataset", datasetSelect("dataset_id", datasets.items)),
      field(
        "Validation dataset",
        datasetSelect("validation_dataset_id", datasets.items, "a fraction of the training rows"),
      ),
      field(
        "Validation fraction (without a validation dataset)",
        input("validation_fraction", "number", 0.1, { step: "any", min: 0.01, max: 0.9 }),
      ),
      field("Test dataset (optional)", datasetSelect("test_dataset_id", datasets.items, "none")),
    ),
    h(
      "fieldset",
      { class: "tasks" },
      h("legend", {}, "Source models per task"),
      tasks.size === 0 && h("p", { class: "muted" }, "Upload source models first."),
      [...tasks].map(([name, taskModels]) => taskChoice(name, taskModels)),
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "Training"),
      field("Strategy", select("strategy", Object.entries(STRATEGIES))),
      h(
        "div",
        { class: "row" },
        field("Max epochs", input("max_epochs", "number", 30, { min: 1, max: 1000 })),
        field("Patience", input("patience", "number", 2, { min: 1, max: 100 })),
        field("Batch size", input("batch_size", "number", 1024, { min: 1 })),
        field("Learning rate", input("learning_rate", "number", 0.001, { step: "any", min: 0 })),
      ),
      h(
        "div",
        { class: "row" },
        h("span", {}, "Baselines to train for the report:"),
        Object.entries(BASELINES).map(([value, label]) =>
          h("label", { class: "check" }, h("input", { type: "checkbox", name: "baselines", value }), label),
        ),
      ),
    ),
    h("button", { type: "submit" }, "Start fusion"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(status);
    try {
      const job = await api("/v1/fusion-jobs", { method: "POST", body: jobSpec(form, tasks) });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      replace(status, message("error", error.message, error.problems));
    }
  });
  replace(root, form);
}

/** The POST /v1/fusion-jobs body from the form; a task joins when at least one of its models is ticked. */
function jobSpec(form, tasks) {
  const data = new FormData(form);
  const ticked = new Set(data.getAll("model"));
  const optional = (name) => data.get(name) || undefined;
  const number = (name) => Number(data.get(name));
  const specTasks = [...tasks]
    .map(([name, models]) => ({ name, models: models.filter((model) => ticked.has(model.id)) }))
    .filter((task) => task.models.length > 0)
    .map(({ name, models }) => {
      const { type, classes } = models[0].task;
      const label = data.get(`label:${name}`);
      return {
        name,
        type,
        ...(classes ? { classes } : {}),
        ...(label && label !== name ? { label } : {}),
        models: models.map((model) => model.id),
      };
    });
  const validation = optional("validation_dataset_id");
  return {
    name: data.get("name"),
    tasks: specTasks,
    dataset_id: data.get("dataset_id"),
    validation_dataset_id: validation,
    validation_fraction: validation ? undefined : number("validation_fraction"),
    test_dataset_id: optional("test_dataset_id"),
    strategy: data.get("strategy"),
    baselines: data.getAll("baselines"),
    hyperparameters: {
      max_epochs: number("max_epochs"),
      patience: number("patience"),
      batch_size: number("batch_size"),
      learning_rate: number("learning_rate"),
    },
  };
}

function groupByTask(models) {
  const tasks = new Map();
  for (const model of [...models].sort((a, b) => a.name.localeCompare(b.name))) {
    if (!tasks.has(model.task.name)) tasks.set(model.task.name, []);
    tasks.get(model.task.name).push(model);
  }
  return tasks;
}

function taskChoice(name, models) {
  return h(
    "div",
    { class: "task-choice", dataset: { task: name } },
    h("h3", {}, `${name} (${models[0].task.type})`),
    models.map((model) =>
      h(
        "label",
        { class: "check" },
        h("input", { type: "checkbox", name: "model", value: model.id, dataset: { task: name, model: model.name } }),
        `${model.name} · ${count(model.decomposition.parameter_count)} parameters`,
      ),
    ),
    field("Label column", input(`label:${name}`, "text", name)),
  );
}

function field(label, control) {
  return h("label", { class: "field" }, h("span", {}, label), control);
}

function input(name, type, value, extra = {}) {
  return h("input", { name, type, value, ...extra });
}

function select(name, options) {
  return h("select", { name }, options.map(([value, label]) => h("option", { value }, label)));
}

function datasetSelect(name, datasets, emptyLabel = null) {
  const options = datasets.map((dataset) => [dataset.id, `${dataset.name} (${count(dataset.rows)} rows)`]);
  return select(name, emptyLabel === null ? options : [["", emptyLabel], ...options]);
}
