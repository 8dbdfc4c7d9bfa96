// Source models: the list, and one model with its signature and its component tree.

import { api } from "../api.js";
import { componentTree } from "../charts/tree.js";
import { facts, h, replace, table, tableOr } from "../dom.js";
import { bytes, count, when } from "../format.js";

export async function list(root, { signal }) {
  const { items } = await api("/v1/models?limit=500", { signal });
  const rows = items.map((model) => [
    h("a", { href: `#/models/${model.id}` }, model.name),
    model.task.name,
    model.task.type,
    count(model.signature.inputs.length),
    count(model.decomposition.parameter_count),
    count(model.decomposition.body_components),
    bytes(model.size_bytes),
    when(model.created_at),
  ]);
  replace(
    root,
    h("h1", {}, "Source models"),
    tableOr(
      "No models yet: upload one with POST /v1/models (see the API docs at /docs).",
      ["name", "task", "type", "inputs", "parameters", "body components", "size", "uploaded"],
      rows,
    ),
  );
}

export async function detail(root, { params: [id], signal }) {
  const model = await api(`/v1/models/${id}`, { signal });
  const { decomposition, signature } = model;
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/models" }, "Source models"), " / ", model.name),
    h("h1", {}, model.name),
    facts([
      ["task", `${model.task.name} (${model.task.type})`],
      ["parameters", count(decomposition.parameter_count)],
      ["body components", count(decomposition.body_components)],
      ["file", `${model.filename}, ${bytes(model.size_bytes)}, opset ${signature.opset}`],
      ["producer", signature.producer || "–"],
      ["uploaded", when(model.created_at)],
    ]),
    h("h2", {}, "Components"),
    h("div", { class: "tree-wrap" }, componentTree(decomposition.components, model.name)),
    h("details", {}, h("summary", {}, "As text"), h("pre", { class: "tree-text" }, decomposition.tree)),
    h("h2", {}, "Inputs"),
    table(
      ["name", "kind", "dtype", "width", "ids accepted"],
      signature.inputs.map((input) => [
        input.name,
        input.kind,
        input.dtype,
        input.width,
        input.cardinality === null ? "–" : `0 – ${input.cardinality - 1}`,
      ]),
    ),
  );
}
