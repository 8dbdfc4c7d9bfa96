// Datasets: the list with a form registering Parquet files by reference, and one dataset's columns with
// their statistics.

import { api } from "../api.js";
import { facts, h, message, replace, table, tableOr } from "../dom.js";
import { bytes, count, when } from "../format.js";

export async function list(root, { signal }) {
  const { items } = await api("/v1/datasets?limit=500", { signal });
  const rows = items.map((dataset) => [
    h("a", { href: `#/datasets/${dataset.id}` }, dataset.name),
    count(dataset.rows),
    count(dataset.columns.length),
    dataset.source_kind === "reference" ? "reference" : dataset.source_format,
    bytes(dataset.size_bytes),
    when(dataset.created_at),
  ]);
  replace(
    root,
    h("h1", {}, "Datasets"),
    tableOr(
      "No datasets yet: upload a CSV or Parquet file with POST /v1/datasets, or register Parquet files below.",
      ["name", "rows", "columns", "format", "size", "added"],
      rows,
    ),
    referenceForm(),
  );
}

/** Parquet files under the server's data root, registered in place: nothing is uploaded. */
function referenceForm() {
  const status = h("div", {});
  const labelled = (label, control) => h("label", { class: "field" }, h("span", {}, label), control);
  const form = h(
    "form",
    { class: "card" },
    h("h2", {}, "Register Parquet files by reference"),
    labelled(
      "URI: a file, folder or glob under the data root (FUSEBOX_DATA_ROOT)",
      h("input", { name: "uri", type: "text", required: true, placeholder: "census/train/*.parquet" }),
    ),
    labelled("Name (default: the URI)", h("input", { name: "name", type: "text" })),
    labelled(
      "Label columns (comma-separated; these may have missing values)",
      h("input", { name: "label_columns", type: "text" }),
    ),
    h("button", { type: "submit" }, "Register"),
    status,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(status);
    const data = new FormData(form);
    const body = { uri: data.get("uri"), label_columns: data.get("label_columns") };
    if (data.get("name")) body.name = data.get("name");
    try {
      const dataset = await api("/v1/datasets", { method: "POST", body });
      location.hash = `#/datasets/${dataset.id}`;
    } catch (error) {
      replace(status, message("error", error.message, error.problems));
    }
  });
  return form;
}

export async function detail(root, { params: [id], signal }) {
  const dataset = await api(`/v1/datasets/${id}`, { signal });
  const rows = dataset.columns.map((column) => [
    column.name,
    column.dtype,
    count(column.missing),
    column.min ?? "–",
    column.max ?? "–",
    column.integer_valued ? "yes" : "no",
    column.values === null ? "more than 32" : column.values.join(", "),
  ]);
  replace(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", dataset.name),
    h("h1", {}, dataset.name),
    facts([
      ["rows", count(dataset.rows)],
      ["columns", count(dataset.columns.length)],
      ...(dataset.source_kind === "reference"
        ? [
            ["read in place from", h("code", {}, dataset.uri)],
            ["files", `${count(dataset.files.length)}, registered ${when(dataset.created_at)}`],
          ]
        : [
            ["uploaded as", `${dataset.source_format}, ${when(dataset.created_at)}`],
            ["sha256", h("code", {}, dataset.sha256)],
          ]),
    ]),
    h("h2", {}, "Columns"),
    table(["name", "dtype", "missing", "min", "max", "whole numbers", "distinct values"], rows),
  );
}
