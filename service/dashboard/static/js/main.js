// The dashboard's entry: a hash router (#/jobs/ID ...) over page modules, behind the sign-in.

import { apiKey, signOut } from "./auth.js";
import { h, message, replace } from "./dom.js";
import * as datasets from "./pages/datasets.js";
import * as deployments from "./pages/deployments.js";
import * as job from "./pages/job.js";
import * as newJob from "./pages/job-new.js";
import * as jobs from "./pages/jobs.js";
import * as models from "./pages/models.js";
import * as signin from "./pages/signin.js";

const ROUTES = [
  { path: /^\/models$/, section: "models", page: models.list },
  { path: /^\/models\/([\w-]+)$/, section: "models", page: models.detail },
  { path: /^\/datasets$/, section: "datasets", page: datasets.list },
  { path: /^\/datasets\/([\w-]+)$/, section: "datasets", page: datasets.detail },
  { path: /^\/jobs$/, section: "jobs", page: jobs.list },
  { path: /^\/jobs\/new$/, section: "jobs", page: newJob.render },
  { path: /^\/jobs\/([\w-]+)$/, section: "jobs", page: job.detail },
  { path: /^\/deployments$/, section: "deployments", page: deployments.list },
];
const HOME = "/jobs";

const root = document.getElementById("page");
const nav = document.getElementById("nav");
const signOutButton = document.getElementById("sign-out");
let shown = null; // the AbortController of the page on screen: aborting stops its requests and streams

async function show() {
  shown?.abort();
  shown = new AbortController();
  const { signal } = shown;
  const signedIn = Boolean(apiKey());
  nav.hidden = !signedIn;
  signOutButton.hidden = !signedIn;
  if (!signedIn) {
    signin.render(root, show);
    return;
  }
  const path = location.hash.replace(/^#/, "") || HOME;
  const route = ROUTES.find((candidate) => candidate.path.test(path));
  if (!route) {
    location.replace(`#${HOME}`);
    return;
  }
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("current", link.dataset.section === route.section);
  }
  replace(root, h("p", { class: "muted" }, "Loading…"));
  try {
    await route.page(root, { params: path.match(route.path).slice(1), signal });
  } catch (error) {
    if (!signal.aborted && error.status !== 401) replace(root, message("error", error.message, error.problems));
  }
}

window.addEventListener("hashchange", show);
window.addEventListener("fusebox:signed-out", show);
signOutButton.addEventListener("click", () => signOut());
show();
