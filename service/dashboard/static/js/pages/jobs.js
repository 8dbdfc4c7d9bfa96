// Fusion jobs, newest first; the list refreshes itself while a job is queued or running.

import { api } from "../api.js";
import { h, replace, tableOr } from "../dom.js";
import { when } from "../format.js";
import { progressBar } from "../widgets/progress.js";
import { FINISHED, statusBadge } from "../widgets/status.js";

const REFRESH_MS = 2000;

export async function list(root, { signal }) {
  const { items } = await api("/v1/fusion-jobs?limit=200", { signal });
  const rows = items.map((job) => [
    h("a", { href: `#/jobs/${job.id}` }, job.name),
    statusBadge(job.status),
    miniProgress(job),
    `${job.epoch} / ${job.max_epochs}`,
    job.spec.strategy,
    job.spec.tasks.map((task) => task.name).join(", "),
    when(job.created_at),
  ]);
  replace(
    root,
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, "Fusion jobs"),
      h("a", { class: "button", href: "#/jobs/new" }, "New fusion job"),
    ),
    tableOr(
      "No fusion jobs yet.",
      ["name", "status", "progress", "epoch", "strategy", "tasks", "created"],
      rows,
    ),
  );
  if (items.some((job) => !FINISHED.has(job.status))) {
    setTimeout(() => signal.aborted || list(root, { signal }).catch(() => {}), REFRESH_MS);
  }
}

function miniProgress(job) {
  const bar = progressBar();
  bar.set(job.progress);
  bar.element.classList.add("mini");
  return bar.element;
}
