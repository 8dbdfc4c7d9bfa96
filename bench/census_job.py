"""The full Census-Income `frozen` fusion job end to end through the API and one worker, on the
embedded defaults: uploads of the four source models and the three splits, then the job from POST to
`succeeded` (queueing, component caching, training, export, deployment), then one inference.

    .venv/bin/python bench/census_job.py

Uses the source models bench/census_fusion.py leaves in var/bench/models (run that first). Target: the
job completes in under 3 minutes on the 2-core reference machine. Writes bench/results/census_job.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.local_service import (  # noqa: E402
    census_job_spec,
    census_source_paths,
    local_service,
    upload_census_sources,
)
from fusion.data.census import load_census  # noqa: E402
from service.client import FuseboxClient  # noqa: E402

TARGET_SECONDS = 180
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    census_source_paths()  # before anything slow: the benchmark needs them
    census = load_census()
    with tempfile.TemporaryDirectory(prefix="fusebox-census-job-") as scratch:
        folder = Path(scratch)
        splits = {}
        for split in ("train", "validation", "test"):
            splits[split] = folder / f"{split}.parquet"
            getattr(census, split).to_parquet(splits[split], index=False)
        with (
            local_service(folder / "service") as service,
            FuseboxClient(service.url, service.api_key, timeout_s=600) as client,
        ):
            timings = {}
            started = time.perf_counter()
            models = upload_census_sources(client)
            datasets = {split: client.upload_dataset(path, name=split) for split, path in splits.items()}
            timings["uploads"] = time.perf_counter() - started

            started = time.perf_counter()
            job = client.create_job(census_job_spec("census", models, datasets))
            job = client.wait_for_job(job.id, timeout_s=1800)
            timings["job"] = time.perf_counter() - started
            if job.status != "succeeded":
                sys.exit(f"the job {job.status}: {job.error}")
            started = time.perf_counter()
            client.predict(
                "census", census.test.drop(columns=[t.name for t in census.tasks]).head(1).to_dict("records")
            )
            timings["first inference"] = time.perf_counter() - started

    report = job.report or {}
    tasks = {entry["task"]: entry["exported"]["test"] for entry in report.get("tasks", [])}
    rows = [
        ("uploads (4 models, 3 splits)", f"{timings['uploads']:.1f}"),
        ("job: POST to succeeded", f"{timings['job']:.1f}"),
        ("  of which training (worker)", f"{report.get('training_seconds', float('nan')):.1f}"),
        ("  epochs run / best", f"{report.get('epochs_run')} / {report.get('best_epoch')}"),
        ("  training rows/s", f"{report.get('rows_per_second', float('nan')):,.0f}"),
        ("first inference", f"{timings['first inference']:.2f}"),
        *((f"test AUC {task}", f"{auc:.4f}") for task, auc in tasks.items()),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"{'step':<{width}}  seconds / value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    verdict = "PASS" if timings["job"] < TARGET_SECONDS else "FAIL"
    print(f"\ntarget: job under {TARGET_SECONDS}s end to end: {timings['job']:.1f}s {verdict}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "census_job.json").write_text(
        json.dumps({"timings_s": timings, "test_auc": tasks, "pass": verdict == "PASS"}, indent=2)
    )


if __name__ == "__main__":
    main()
