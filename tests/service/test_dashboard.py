"""The web dashboard in a real browser (headless Chromium, driven by Playwright) against the real stack
(API, worker, PostgreSQL, Redis): sign in, look at a model's component tree, start a fusion job from the
page, watch its progress bar and metric plots move while it runs, read the report as a table and as a
chart, and try the deployed model.

Screenshots go to var/screenshots/. FUSEBOX_DOCS_SCREENSHOT=1 also copies the finished job page to
docs/job-page.png, the README's picture (left alone otherwise, so that test runs do not touch the repo).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.helpers import ROOT
from tests.helpers.stacks import Stack
from tests.helpers.uploads import DataFiles, SourceFile, upload_sources_and_data

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "var" / "screenshots"
DOCS_SCREENSHOT = ROOT / "docs" / "job-page.png"
JOB_NAME = "dashboard-census"
TRAINING = {"max_epochs": "5", "patience": "5", "batch_size": "16"}
"""Small batches and no early stop: slow enough to watch the job move (a few seconds an epoch)."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, pg_stack: Stack) -> Iterator[Page]:
    """A fresh tab (empty sessionStorage) on the dashboard; the test fails on any uncaught script error."""
    context = browser.new_context(base_url=pg_stack.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(20_000)
    page.goto("/")
    yield page
    context.close()
    assert errors == [], errors


@pytest.fixture(scope="module")
def uploaded(pg_stack: Stack, source_files: list[SourceFile], data_files: DataFiles) -> dict[str, dict]:
    """Source models and datasets uploaded through the API, as a user would before opening the page."""
    with pg_stack.client() as client:
        uploaded = upload_sources_and_data(client, source_files, data_files, "dashboard")
    return {**uploaded.models, "train": uploaded.train, "validation": uploaded.validation}


def sign_in(page: Page, key: str) -> None:
    page.fill("#api-key", key)
    page.click("form.sign-in button[type=submit]")
    expect(page.locator("#nav")).to_be_visible()


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_dashboard_files_are_served_without_a_key(pg_stack: Stack) -> None:
    with pg_stack.client(api_key="") as client:
        index = client.get("/")
        script = client.get("/dashboard/js/main.js")
        outside = client.get("/dashboard/%2E%2E/%2E%2E/pyproject.toml")  # reaches the route as ../../
        missing = client.get("/dashboard/js/nothing.js")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/dashboard/js/main.js">' in index.text
    assert "default-src 'self'" in index.headers["content-security-policy"]
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert outside.status_code == missing.status_code == 404


def test_sign_in_and_model_component_tree(page: Page, pg_stack: Stack, uploaded: dict[str, dict]) -> None:
    page.fill("#api-key", "fbx_not-a-key")
    page.click("form.sign-in button[type=submit]")
    expect(page.locator("form.sign-in .message.error")).to_contain_text("not valid")
    assert page.evaluate("sessionStorage.getItem('fusebox.apiKey')") is None

    sign_in(page, pg_stack.api_key)
    assert page.evaluate("sessionStorage.getItem('fusebox.apiKey')") == pg_stack.api_key

    deepfm = uploaded["never_married"]
    page.click("#nav a[data-section=models]")
    page.click(f"a[href='#/models/{deepfm['id']}']")
    expect(page.locator("h1")).to_have_text(deepfm["name"])
    tree = page.locator("svg.component-tree")
    expect(tree).to_be_visible()
    # Every component of the decomposition is a box; DeepFM's parallel body nests its branches.
    names = _component_names(deepfm["decomposition"]["components"])
    assert sorted(tree.locator("g.box").evaluate_all("boxes => boxes.map(b => b.dataset.component)")) == sorted(names)
    body = tree.locator("g.container:has(> g.box.role-body)")
    assert body.locator("g.box.role-branch").count() >= 2
    screenshot(page, "model-tree.png")

    page.click("#nav a[data-section=datasets]")
    expect(page.locator("main table")).to_contain_text("dashboard train")
    page.click("#sign-out")
    expect(page.locator("form.sign-in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('fusebox.apiKey')") is None


def test_job_from_the_page_live_report_and_try_it(
    page: Page, pg_stack: Stack, uploaded: dict[str, dict], data_files: DataFiles
) -> None:
    sign_in(page, pg_stack.api_key)
    api_requests: list[dict[str, str]] = []
    page.on("request", lambda request: _is_api(request.url) and api_requests.append(request.headers))

    # Start the job from the page: dataset, the models per task, the strategy, the training budget.
    page.click("#nav a[data-section=jobs]")
    page.click("a[href='#/jobs/new']")
    page.fill("input[name=name]", JOB_NAME)
    # No dataset is training data until the user says so; the hyper-parameters start at the API's defaults.
    assert page.input_value("select[name=dataset_id]") == ""
    defaults = pg_stack.client().get("/openapi.json").json()["components"]["schemas"]["Hyperparameters"]["properties"]
    assert {name: float(page.input_value(f"input[name={name}]")) for name in defaults} == {
        name: float(field["default"]) for name, field in defaults.items()
    }
    page.select_option("select[name=dataset_id]", uploaded["train"]["id"])
    page.select_option("select[name=validation_dataset_id]", uploaded["validation"]["id"])
    for task in data_files.tasks:
        page.check(f"input[name=model][value='{uploaded[task]['id']}']")
    page.select_option("select[name=strategy]", "frozen")
    for name, value in TRAINING.items():
        page.fill(f"input[name={name}]", value)
    page.check("input[name=baselines][value=shared_bottom]")
    page.click("form.new-job button[type=submit]")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]{36}$"))
    job_id = page.url.rsplit("/", 1)[-1]

    # Watch it run: the progress bar and every task's plot change while it does.
    progress, points = _watch(page, pg_stack, job_id)
    running = [value for value in progress if 0 < value < 100]
    assert len(set(running)) >= 2, f"the progress bar did not move while the job ran: {progress}"
    assert progress == sorted(progress) and progress[-1] == 100.0
    for task, counts in points.items():
        assert counts == sorted(counts), counts
        assert counts[0] < counts[-1] and len(set(counts)) >= 3, f"{task}'s plot did not grow: {counts}"

    with pg_stack.client() as client:
        job = client.get(f"/v1/fusion-jobs/{job_id}").json()
    assert job["status"] == "succeeded", f"{job['error']}\n{pg_stack.logs()}"
    assert [(task["name"], [ref["id"] for ref in task["models"]]) for task in job["spec"]["tasks"]] == [
        (task, [uploaded[task]["id"]]) for task in data_files.tasks
    ]
    assert job["spec"]["baselines"] == ["shared_bottom"] and job["spec"]["hyperparameters"]["max_epochs"] == 5
    for task in data_files.tasks:
        plot = page.locator(f"figure.plot[data-task={task}] svg")
        assert plot.get_attribute("data-points") == str(len(job["metrics"]))
        assert float(plot.get_attribute("data-last")) == job["metrics"][-1]["validation"][task]
    expect(page.locator(".title-row .badge")).to_have_text("succeeded")

    _check_report(page, job["report"])
    _check_try_it(page, pg_stack, data_files)
    path = screenshot(page, "job-finished.png")
    if os.environ.get("FUSEBOX_DOCS_SCREENSHOT") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS_SCREENSHOT)

    # The lists show it: the job succeeded, its model is deployed as the newest version of its name.
    page.click("#nav a[data-section=jobs]")
    expect(page.locator("main tbody tr", has_text=JOB_NAME).locator(".badge")).to_have_text("succeeded")
    screenshot(page, "jobs.png")
    page.click("#nav a[data-section=deployments]")
    expect(page.locator("main tbody tr", has_text=JOB_NAME)).to_contain_text("latest")
    screenshot(page, "deployments.png")

    # Every API request of the page carried the key, the event stream's included.
    assert api_requests and all(h.get("authorization") == f"Bearer {pg_stack.api_key}" for h in api_requests)
    assert any(h.get("accept") == "text/event-stream" for h in api_requests)


def _watch(page: Page, stack: Stack, job_id: str, timeout: float = 600) -> tuple[list[float], dict[str, list[int]]]:
    """Samples the progress bar and the plots' point counts until the page shows the job finished."""
    deadline = time.monotonic() + timeout
    bar = page.locator("article.job .progress")
    plots = page.locator("figure.plot")
    progress: list[float] = []
    points: dict[str, list[int]] = {}
    shot = False
    while page.locator("article.job[data-finished]").count() == 0:
        assert time.monotonic() < deadline, f"job {job_id} did not finish on the page\n{stack.logs()}"
        progress.append(float(bar.get_attribute("aria-valuenow")))
        for task, count in plots.evaluate_all(
            "figures => figures.map(f => [f.dataset.task, Number(f.querySelector('svg').dataset.points)])"
        ):
            points.setdefault(task, []).append(count)
        if not shot and 0 < progress[-1] < 100 and points and all(counts[-1] >= 2 for counts in points.values()):
            screenshot(page, "job-running.png")
            shot = True
        page.wait_for_timeout(200)
    progress.append(float(bar.get_attribute("aria-valuenow")))
    for task in points:
        points[task].append(int(page.locator(f"figure.plot[data-task={task}] svg").get_attribute("data-points")))
    return progress, points


def _check_report(page: Page, report: dict) -> None:
    """The table holds, per task, each source model, the baseline, the fused head and the exported model
    (a fallback marked as one), with the report's numbers; the chart has one bar per row."""
    rows = page.locator("table.report tbody tr")
    expected = []
    for task in report["tasks"]:
        fell_back = task["answered_by"] != "fused"
        expected += [(task["task"], name, "source", score) for name, score in task["sources"].items()]
        expected += [(task["task"], name, "baseline", score) for name, score in task["baselines"].items()]
        expected.append((task["task"], "fused head", "fused", task["fused"]))
        expected.append((task["task"], "exported model", "fallback" if fell_back else "exported", task["exported"]))
    assert rows.count() == len(expected)
    for i, (task, model, kind, score) in enumerate(expected):
        row = rows.nth(i)
        assert (row.get_attribute("data-task"), row.get_attribute("data-model")) == (task, model)
        assert row.get_attribute("data-kind") == kind
        assert row.locator("td").nth(3).inner_text() == f"{score['validation']:.4f}"
        if kind == "fallback":
            assert "fallback" in row.inner_text()
        if kind == "source":  # scored on the fusion's training rows too, beside validation
            assert f"{score['train']:.4f}" in row.inner_text()
    warnings = page.locator("p.seen-rows-warning").all_text_contents()
    assert warnings == [f"warning: {line}" for line in report["seen_rows_warnings"]]

    bars = page.locator("svg.bar-chart rect[data-kind]")
    assert bars.count() == len(expected)
    assert [bars.nth(i).get_attribute("data-kind") for i in range(len(expected))] == [e[2] for e in expected]
    assert [bars.nth(i).get_attribute("data-value") for i in range(len(expected))] == [
        f"{e[3]['validation']:.4f}" for e in expected
    ]
    # Bars start at zero, so their heights are in the ratio of their values; names are written in full; the
    # legend names only the kinds of bar drawn.
    heights = [float(bars.nth(i).get_attribute("height")) for i in range(len(expected))]
    values = [e[3]["validation"] for e in expected]
    assert all(
        abs(height / heights[0] - value / values[0]) < 1e-3 for height, value in zip(heights, values, strict=True)
    )
    labels = page.locator("svg.bar-chart .group .bar text:not(.value)").all_text_contents()
    assert {model for _, model, kind, _ in expected if kind == "source"} <= set(labels)
    legend = page.locator("svg.bar-chart .legend text").all_text_contents()
    assert len(legend) == len({kind for _, _, kind, _ in expected})


def _check_try_it(page: Page, stack: Stack, data_files: DataFiles) -> None:
    """One validation row typed into the form: the page shows what POST /v1/predict answers for it."""
    record = pd.read_csv(data_files.validation).drop(columns=data_files.tasks).iloc[7]
    record = {column: (int(value) if float(value).is_integer() else float(value)) for column, value in record.items()}
    form = page.locator("form.try-it")
    expect(form).to_be_visible()
    fields = form.locator("input").evaluate_all("inputs => inputs.map(i => i.name)")
    assert sorted(fields) == sorted(record)
    for column, value in record.items():
        form.locator(f"input[name='{column}']").fill(repr(value))
    form.locator("button[type=submit]").click()
    outputs = page.locator(".predictions output")
    expect(outputs).to_have_count(len(data_files.tasks))
    shown = {outputs.nth(i).get_attribute("data-task"): json.loads(outputs.nth(i).get_attribute("data-value"))
             for i in range(outputs.count())}  # fmt: skip

    with stack.client() as client:
        answer = client.post(f"/v1/predict/{JOB_NAME}", json={"records": [record]})
    assert answer.status_code == 200, answer.text
    assert shown == answer.json()["predictions"][0]


def _is_api(url: str) -> bool:
    return urlsplit(url).path.startswith(("/v1/", "/v2/"))


def _component_names(components: list[dict]) -> list[str]:
    return [name for c in components for name in [c["name"], *_component_names(c.get("children", []))]]


def test_api_docs_draw_every_operation_without_internet(page: Page, pg_stack: Stack) -> None:
    """Swagger UI and ReDoc come with the service: every request that leaves this host is refused, and both
    pages still draw the API with no script, style or font from elsewhere (ReDoc's footer asks for a logo)."""
    leaving: list[tuple[str, str]] = []

    def this_host_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            leaving.append((route.request.resource_type, route.request.url))
            route.abort()

    page.route("**/*", this_host_only)
    schema = pg_stack.client().get("/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    page.goto("/docs")
    expect(page.locator(".opblock")).to_have_count(operations)
    expect(page.locator(".opblock-summary-path[data-path='/v1/fusion-jobs']").first).to_be_visible()
    page.goto("/redoc")
    summary = schema["paths"]["/v1/deployments"]["get"]["summary"]
    expect(page.locator("h2", has_text=summary)).to_be_visible()
    assert [url for kind, url in leaving if kind in ("script", "stylesheet", "font", "fetch", "xhr")] == []
