// Datasets: the list, and one dataset's columns with their statistics.

import { api } from "../api.js";
import { facts, h, replace, table, tableOr } from "../dom.js";
import { bytes, count, when } from "../format.js";

export async function list(root, { signal }) {
  const { items } = await api("/v1/datasets?limit=500", { signal });
  const rows = items.map((dataset) => [
    h("a", { href: `#/datasets/${dataset.id}` }, dataset.name),
    count(dataset.rows),
    count(dataset.columns.length),
    dataset.source_format,
    bytes(dataset.size_bytes),
    when(dataset.created_at),
  ]);
  replace(
    root,
    h("h1", {}, "Datasets"),
    tableOr(
      "No datasets yet: upload a CSV or Parquet file with POST /v1/datasets.",
      ["name", "rows", "columns", "format", "size", "uploaded"],
      rows,
    ),
  );
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
      ["uploaded as", `${dataset.source_format}, ${when(dataset.created_at)}`],
      ["sha256", h("code", {}, dataset.sha256)],
    ]),
    h("h2", {}, "Columns"),
    table(["name", "dtype", "missing", "min", "max", "whole numbers", "distinct values"], rows),
  );
}
