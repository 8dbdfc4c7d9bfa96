// One fusion job, live: status, progress bar and per-task metric plots follow the job's event stream;
// once it has finished, the report (table and chart) and, when deployed, a form to try the model.

import { api } from "../api.js";
import { facts, h, message, replace } from "../dom.js";
import { readEvents } from "../events.js";
import { count, duration, when } from "../format.js";
import { epochPlots } from "../widgets/epoch-plots.js";
import { progressBar } from "../widgets/progress.js";
import { reportChart, reportTable } from "../widgets/report.js";
import { FINISHED, statusBadge } from "../widgets/status.js";
import { tryIt } from "../widgets/try-it.js";

const RECONNECT_MS = 2000;

export async function detail(root, { params: [id], signal }) {
  const [job, models] = await Promise.all([
    api(`/v1/fusion-jobs/${id}`, { signal }),
    api("/v1/models?limit=500", { signal }),
  ]);
  const view = jobView(job, new Map(models.items.map((model) => [model.id, model.name])));
  replace(root, view.element);
  if (FINISHED.has(job.status)) {
    await view.finish(job, signal);
  } else {
    follow(job.id, view, signal);
  }
}

/** Reads the job's events until it is done; reconnects after a dropped connection (the stream restarts
 * with everything so far, which the view takes again without harm). */
async function follow(id, view, signal) {
  let done = false;
  const onEvent = ({ event, data }) => {
    if (event === "done") done = true;
    view.apply(event, data, signal);
  };
  while (!done && !signal.aborted) {
    try {
      await readEvents(`/v1/fusion-jobs/${id}/events`, onEvent, signal);
    } catch (error) {
      if (signal.aborted) return;
      if (error.status === 404) {
        view.notice(`The job is gone: ${error.message}`);
        return;
      }
      view.notice(`Live updates interrupted (${error.message}); reconnecting…`);
    }
    if (!done) await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
  }
}

function jobView(job, modelNames) {
  const badge = h("span", {}, statusBadge(job.status));
  const stage = h("span", { class: "stage muted" }, job.stage ?? "");
  const bar = progressBar();
  const plots = epochPlots(job.spec.tasks, job.max_epochs);
  const notices = h("div", {});
  const outcome = h("section", { class: "outcome" });
  const spec = h("div", {}, specFacts(job, modelNames));
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel job");
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`/v1/fusion-jobs/${job.id}/cancel`, { method: "POST" });
    } catch (error) {
      replace(notices, message("error", error.message));
    }
  });

  const setStatus = ({ status, stage: text }) => {
    replace(badge, statusBadge(status));
    stage.textContent = text ?? "";
    cancel.hidden = FINISHED.has(status);
  };
  const setProgress = ({ progress, epoch, max_epochs: maxEpochs, rows_per_second: rate, eta_seconds: eta }) =>
    bar.set(progress, `${progress.toFixed(1)} % · epoch ${epoch} of ${maxEpochs}${pace(rate, eta)}`);

  setStatus(job);
  setProgress(job);
  job.metrics.forEach(plots.add);

  const element = h(
    "article",
    { class: "job", dataset: { jobId: job.id } },
    h("p", { class: "crumbs" }, h("a", { href: "#/jobs" }, "Fusion jobs"), " / ", job.name),
    h("div", { class: "title-row" }, h("h1", {}, job.name), badge, cancel),
    stage,
    bar.element,
    notices,
    h("h2", {}, "Validation metric per epoch"),
    plots.element,
    outcome,
    h("h2", {}, "Spec"),
    spec,
  );

  async function finish(finished, signal) {
    setStatus(finished);
    setProgress(finished);
    finished.metrics.forEach(plots.add);
    replace(notices);
    element.dataset.finished = finished.status;
    replace(outcome, ...outcomeOf(finished));
    replace(spec, specFacts(finished, modelNames));
    if (finished.deployment) outcome.append(await trySection(finished, signal));
  }

  return {
    element,
    finish,
    notice: (text) => replace(notices, message("info", text)),
    apply(event, data, signal) {
      if (event === "status") setStatus(data);
      else if (event === "progress") setProgress(data);
      else if (event === "epoch") plots.add(data);
      else if (event === "done") finish(data, signal);
    },
  };
}

function outcomeOf(job) {
  if (job.status === "failed") return [message("error", `The job failed: ${job.error}`)];
  if (job.status === "cancelled") return [message("info", "The job was cancelled.")];
  if (!job.report) return [];
  return [
    h("h2", {}, "Report"),
    reportTable(job.report),
    h("figure", { class: "report-chart" }, reportChart(job.report)),
  ];
}

async function trySection(job, signal) {
  const section = h(
    "section",
    { class: "try" },
    h("h2", {}, "Try it"),
    h(
      "p",
      { class: "muted" },
      `Deployed as ${job.deployment.name}, version ${job.deployment.version}. `,
      `One record sent to POST /v1/predict/${job.deployment.name}, which answers from the newest version.`,
    ),
  );
  try {
    const [deployments, dataset] = await Promise.all([
      api(`/v1/deployments?name=${encodeURIComponent(job.deployment.name)}`, { signal }),
      api(`/v1/datasets/${job.spec.dataset_id}`, { signal }),
    ]);
    const deployment = deployments.items.find((item) => item.latest) ?? deployments.items[0];
    section.append(await tryIt(deployment, dataset.columns, signal));
  } catch (error) {
    if (!signal.aborted) section.append(message("error", error.message));
  }
  return section;
}

function specFacts(job, modelNames) {
  const { spec } = job;
  const hyper = spec.hyperparameters;
  return facts([
    ...spec.tasks.map((task) => [
      `task ${task.name}`,
      `${task.type}: ${task.models.map((ref) => modelNames.get(ref.id) ?? ref.id).join(", ")}`,
    ]),
    ["strategy", spec.strategy],
    ["training", `max ${hyper.max_epochs} epochs, batch ${hyper.batch_size}, learning rate ${hyper.learning_rate}`],
    ["baselines", spec.baselines.length > 0 ? spec.baselines.join(", ") : "none"],
    ["created", when(job.created_at)],
    ["finished", when(job.finished_at)],
  ]);
}

/** " · 41,000 rows/s · about 3 min left" while the pace is known. */
function pace(rate, eta) {
  if (!rate) return "";
  return ` · ${count(Math.round(rate))} rows/s` + (eta === null || eta === undefined ? "" : ` · about ${duration(eta)} left`);
}
