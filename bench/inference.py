"""In-process inference: the fused model against its source models run one after another.

    .venv/bin/python bench/inference.py [--fused var/bench/fused_frozen.onnx]

Needs the models bench/census_fusion.py leaves under var/bench. Every session is made as the service
makes its sessions (service/inference/runtime.py, settings from the environment). Each configuration is timed in
rounds that alternate between the two sides, so both see the same machine; the table reports medians of the
per-round times (wall clock, and the CPU time of this process, which other processes on a shared machine
disturb less), the ratios fused / sum of sources, and writes bench/results/inference.json. The target is on
wall clock at batch 1024 (issue 16: the fused graph holds every source plus the AKF head, so at batch 1,
where a call's fixed cost dominates, no target applies).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.census_fusion import MODELS, SOURCES  # noqa: E402
from fusion.akf.sources import FusionSource  # noqa: E402
from fusion.data.census import load_census  # noqa: E402
from fusion.intake.files import load_model_file  # noqa: E402
from service.core.config import Settings  # noqa: E402
from service.inference.runtime import create_session  # noqa: E402

TARGETS: dict[int, float | None] = {1: None, 1024: 1.3}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fused", type=Path, default=ROOT / "var" / "bench" / "fused_frozen.onnx")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not args.fused.exists():
        sys.exit(f"{args.fused} is missing: run bench/census_fusion.py first")

    data = load_census().test
    sources = [
        FusionSource(f"{task}_{family}", task, load_model_file(MODELS / f"{task}_{family}.onnx"))
        for family, task, _ in SOURCES
    ]
    settings = Settings()
    source_sessions = [(create_session(s.model.SerializeToString(), settings), s) for s in sources]
    fused_session = create_session(str(args.fused), settings)
    fused_inputs = {value.name for value in fused_session.get_inputs()}

    rows = []
    for batch, calls in ((1, 2000), (1024, 40)):
        frame = data.head(batch)
        feeds = [s.feed(frame) for _, s in source_sessions]
        fused_feed = {name: values for feed in feeds for name, values in feed.items() if name in fused_inputs}

        def run_sources(feeds=feeds) -> None:
            for (session, _), feed in zip(source_sessions, feeds, strict=True):
                session.run(None, feed)

        def run_fused(feed=fused_feed) -> None:
            fused_session.run(None, feed)

        separate, together = [], []
        for _ in range(args.rounds):
            separate.append(_seconds_per_call(run_sources, calls))
            together.append(_seconds_per_call(run_fused, calls))
        (sources_wall, sources_cpu), (fused_wall, fused_cpu) = _medians(separate), _medians(together)
        ratio, target = fused_wall / sources_wall, TARGETS[batch]
        rows.append(
            {
                "batch": batch,
                "sources_ms": sources_wall * 1e3,
                "fused_ms": fused_wall * 1e3,
                "ratio": ratio,
                "sources_cpu_ms": sources_cpu * 1e3,
                "fused_cpu_ms": fused_cpu * 1e3,
                "cpu_ratio": fused_cpu / sources_cpu,
                "fused_rows_per_s": batch / fused_wall,
                "target": target,
                "pass": None if target is None else ratio <= target,
            }
        )

    print(
        "| batch | 4 sources one after another (ms) | fused model (ms) | fused / sources | CPU ms: sources, fused "
        "| CPU fused / sources | fused rows/s | target |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        verdict = "-" if r["target"] is None else f"<= {r['target']} {'PASS' if r['pass'] else 'FAIL'}"
        print(
            f"| {r['batch']} | {r['sources_ms']:.3f} | {r['fused_ms']:.3f} | {r['ratio']:.2f} | "
            f"{r['sources_cpu_ms']:.3f}, {r['fused_cpu_ms']:.3f} | {r['cpu_ratio']:.2f} | "
            f"{r['fused_rows_per_s']:,.0f} | {verdict} |"
        )
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "inference.json").write_text(json.dumps(rows, indent=2))


def _seconds_per_call(function, calls: int) -> tuple[float, float]:
    """Wall-clock and process CPU seconds per call."""
    function()
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(calls):
        function()
    return (time.perf_counter() - started) / calls, (time.process_time() - cpu_started) / calls


def _medians(rounds: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(wall for wall, _ in rounds), statistics.median(cpu for _, cpu in rounds)


if __name__ == "__main__":
    main()
