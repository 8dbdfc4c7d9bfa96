// Starting a fusion job: the data, the source models per task, the strategy and the hyper-parameters.
// The choices and defaults come from the API's own OpenAPI schema, so that the form never disagrees with it.

import { api } from "../api.js";
import { h, message, replace } from "../dom.js";
import { count } from "../format.js";

const STRATEGY_NOTES = {
  frozen: "source components computed once; fastest",
  adaptive: "the fused state fed back into deeper components",
  finetune: "adaptive, with the source models trained too",
};
const BASELINE_NAMES = { shared_bottom: "Shared-Bottom", mmoe: "MMoE", ple: "PLE" };

export async function render(root, { signal }) {
  const [models, datasets, openapi] = await Promise.all([
    api("/v1/models?limit=500", { signal }),
    api("/v1/datasets?limit=500", { signal }),
    api("/openapi.json", { signal }),
  ]);
  const schema = jobSchema(openapi);
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
      field("Training dataset", datasetSelect("dataset_id", datasets.items, "choose the training rows", true)),
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
      field(
        "Strategy",
        select(
          "strategy",
          schema.strategies.map((name) => [name, STRATEGY_NOTES[name] ? `${name}: ${STRATEGY_NOTES[name]}` : name]),
          schema.defaultStrategy,
        ),
      ),
      h(
        "div",
        { class: "row hyperparameters" },
        Object.entries(schema.hyperparameters).map(([name, property]) =>
          field(property.title ?? name, numberInput(name, property)),
        ),
      ),
      h(
        "div",
        { class: "row" },
        h("span", {}, "Baselines to train for the report:"),
        schema.baselines.map((value) =>
          h(
            "label",
            { class: "check" },
            h("input", { type: "checkbox", name: "baselines", value }),
            BASELINE_NAMES[value] ?? value,
          ),
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
      const job = await api("/v1/fusion-jobs", { method: "POST", body: jobSpec(form, tasks, schema) });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      replace(status, message("error", error.message, error.problems));
    }
  });
  replace(root, form);
}

/** What the form offers, read from the job-create schema: strategies, baselines, hyper-parameters. */
function jobSchema(openapi) {
  const schemas = openapi.components.schemas;
  const resolve = (node) => (node.$ref ? schemas[node.$ref.split("/").pop()] : node);
  const job = schemas.JobCreate.properties;
  return {
    strategies: resolve(job.strategy).enum,
    defaultStrategy: job.strategy.default,
    baselines: resolve(job.baselines.items).enum,
    hyperparameters: schemas.Hyperparameters.properties,
  };
}

/** The POST /v1/fusion-jobs body from the form; a task joins when at least one of its models is ticked. */
function jobSpec(form, tasks, schema) {
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
    hyperparameters: Object.fromEntries(Object.keys(schema.hyperparameters).map((name) => [name, number(name)])),
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

/** A number field with the schema's default and bounds; integers step by 1. */
function numberInput(name, property) {
  const bounds = {
    min: property.minimum ?? property.exclusiveMinimum,
    max: property.maximum ?? property.exclusiveMaximum,
  };
  return input(name, "number", property.default, {
    step: property.type === "integer" ? 1 : "any",
    required: true,
    title: property.description ?? "",
    ...Object.fromEntries(Object.entries(bounds).filter(([, value]) => value !== undefined)),
  });
}

function select(name, options, selected = undefined, extra = {}) {
  return h(
    "select",
    { name, ...extra },
    options.map(([value, label]) => h("option", { value, selected: value === selected }, label)),
  );
}

/** Datasets by name; the first option is a placeholder, so that no dataset is chosen without a click. */
function datasetSelect(name, datasets, emptyLabel, required = false) {
  const options = datasets.map((dataset) => [dataset.id, `${dataset.name} (${count(dataset.rows)} rows)`]);
  return select(name, [["", emptyLabel], ...options], "", required ? { required: true } : {});
}
