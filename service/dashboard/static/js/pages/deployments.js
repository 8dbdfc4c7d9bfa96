// Deployments: each fused model served, by name and version, with the tasks it answers and how.

import { api } from "../api.js";
import { h, replace, tableOr } from "../dom.js";
import { bytes, when } from "../format.js";

export async function list(root, { signal }) {
  const { items } = await api("/v1/deployments?limit=500", { signal });
  const rows = items.map((deployment) => [
    deployment.name,
    h("span", {}, `v${deployment.version}`, deployment.latest && h("span", { class: "badge latest" }, "latest")),
    h("ul", { class: "plain" }, deployment.tasks.map(taskLine)),
    deployment.strategy,
    h("a", { href: `#/jobs/${deployment.job_id}` }, "job"),
    h("code", {}, deployment.predict_url ?? deployment.infer_url),
    bytes(deployment.size_bytes),
    when(deployment.created_at),
  ]);
  replace(
    root,
    h("h1", {}, "Deployments"),
    tableOr(
      "Nothing deployed yet: a fusion job that succeeds deploys its model under its name.",
      ["name", "version", "tasks", "strategy", "from", "endpoint", "size", "deployed"],
      rows,
    ),
  );
}

function taskLine(task) {
  const fellBack = task.answered_by !== "fused";
  return h(
    "li",
    {},
    `${task.name} (${task.type})`,
    fellBack && h("span", { class: "badge fallback" }, `fallback: ${task.answered_by}`),
  );
}
