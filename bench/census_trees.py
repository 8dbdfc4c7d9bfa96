"""Census-Income with tree ensembles among the sources: gradient-boosted trees fused with neural models.

    .venv/bin/python bench/census_trees.py [--rows N] [--fusion-fraction F] [--strategies frozen,adaptive,finetune]
                                           [--max-epochs E]

Sources: LightGBM and an MLP for income, XGBoost and a DeepFM for never_married. The boosted models read
one float tensor built from every Census column (ids and values alike, through input_columns) and are
exported with onnxmltools, as their users export them; the neural ones come from the model zoo.

The training rows are split once (seeded) into source rows and fusion rows (`--fusion-fraction`, default
a quarter). Every source is trained on the source rows only (early-stopped on the validation rows); each
strategy fuses all four on the fusion rows, which no source has seen. That is stacking's rule: on its own
training rows a boosted model looks far better than it is, and a fusion trained there learns to trust it
too much. MMoE and PLE have no sources, so they are trained from scratch on all training rows (source and
fusion rows). Validation and test rows are shared by all. One table, then the target: the fused model's
test AUC at least the best source's on both tasks, answered by the fused head (no fallback), in this one
run. `--rows` subsamples the training rows (a quarter of that for validation and test) for a quicker run
on a small machine. Writes bench/results/census_trees.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import fusion  # noqa: E402, F401  (first: it sets torch's OpenMP wait policy, read once when torch loads)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from bench.tables import auc_cell, markdown_table  # noqa: E402
from fusion.akf.baselines import train_baseline  # noqa: E402
from fusion.akf.pipeline import FusionData, FusionResult, FusionSettings, fuse  # noqa: E402
from fusion.akf.sources import FusionSource  # noqa: E402
from fusion.classic import find_estimator  # noqa: E402
from fusion.data.census import CensusData, load_census, subsample  # noqa: E402
from fusion.data.tables import as_table  # noqa: E402
from fusion.intake import load_model  # noqa: E402
from fusion.metrics import task_metric  # noqa: E402
from fusion.onnx_runtime import run_model  # noqa: E402
from fusion.tasks import Task  # noqa: E402
from fusion.training import TrainConfig  # noqa: E402
from fusion.zoo import build_single_task_model, export_onnx, train_model  # noqa: E402

RESULTS = ROOT / "bench" / "results"
TREE_INPUT = "features"
TASKS = ("income", "never_married")
TRAINING = TrainConfig(learning_rate=1e-3, batch_size=1024, max_epochs=30, patience=2, seed=0, device="cpu")
FUSION_FRACTION = 0.25
"""Share of the training rows held out of every source for the fusion: enough rows for the fusion's few
parameters to learn how far to trust each source, while the sources keep most of the data."""
SPLIT_SEED = 0


@dataclass
class Row:
    model: str
    income: float
    never_married: float
    seconds: float
    note: str = ""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=0, help="training rows to subsample (0: all)")
    parser.add_argument(
        "--fusion-fraction",
        type=float,
        default=FUSION_FRACTION,
        help="share of the training rows kept from the sources for the fusion to train on",
    )
    parser.add_argument("--strategies", default="frozen,adaptive,finetune")
    parser.add_argument("--max-epochs", type=int, default=TRAINING.max_epochs)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    training = replace(TRAINING, max_epochs=args.max_epochs)
    data = load_census()
    if args.rows:
        data = subsample(data, args.rows, seed=0)
    columns = [*(f.name for f in data.schema.categorical), *data.schema.dense]
    source_rows, fusion_rows = _split_training(data.train, args.fusion_fraction)
    seen_by_sources = replace(data, train=source_rows)
    split_line = (
        f"training rows: {len(source_rows):,} source rows (the sources train on these), {len(fusion_rows):,} "
        f"fusion rows (the fusion trains on these, no source saw them), all {len(data.train):,} for MMoE/PLE; "
        f"validation {len(data.validation):,}, test {len(data.test):,} rows, shared by all"
    )
    folder = ROOT / "var" / "bench" / "trees"
    folder.mkdir(parents=True, exist_ok=True)

    rows: list[Row] = []
    sources = [
        _boosted(seen_by_sources, "lightgbm", "income", columns, folder, rows),
        _neural(seen_by_sources, "mlp", "income", training, folder, rows),
        _boosted(seen_by_sources, "xgboost", "never_married", columns, folder, rows),
        _neural(seen_by_sources, "deepfm", "never_married", training, folder, rows),
    ]
    results: dict[str, FusionResult] = {}
    fusion_data = FusionData(fusion_rows, data.validation, data.test)
    for strategy in args.strategies.split(","):
        started = time.perf_counter()
        result = fuse(data.tasks, sources, fusion_data, FusionSettings(strategy=strategy, training=training))
        results[strategy] = result
        test = {task.task: task.exported.test for task in result.report.tasks}
        answered = ", ".join(f"{t.task}: {t.answered_by}" for t in result.report.tasks)
        # The fused head's own scores, also where a task fell back: how far it is from its best source.
        head = ", ".join(f"{t.task} {t.fused.validation:.4f}/{t.fused.test or 0:.4f}" for t in result.report.tasks)
        rows.append(
            Row(f"fused ({strategy})", test["income"], test["never_married"], time.perf_counter() - started,
                f"trained on {len(fusion_rows):,} fusion rows; answered by {answered}; "
                f"fused head validation/test AUC {head}; "
                f"best epoch {result.report.best_epoch}/{result.report.epochs_run}; "
                f"seen-rows warnings {len(result.report.seen_rows_warnings)}; "
                f"export max abs diff {result.report.export_max_abs_diff:.1e}")
        )  # fmt: skip
    for kind in ("mmoe", "ple"):
        _baseline(data, sources, kind, training, rows)

    print(split_line)
    print(_table(rows))
    verdicts = _targets(rows, results)
    print("\n".join(verdicts))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "census_trees.json").write_text(
        json.dumps(
            {
                "rows": [row.__dict__ for row in rows],
                "reports": {name: result.report.to_dict() for name, result in results.items()},
                "targets": verdicts,
                "training_rows": {"source": len(source_rows), "fusion": len(fusion_rows), "all": len(data.train)},
            },
            indent=2,
        )
    )


def _split_training(train: pd.DataFrame, fusion_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded (source rows, fusion rows): the fusion rows are `fusion_fraction` of the training rows."""
    if not 0.0 < fusion_fraction < 1.0:
        raise SystemExit(f"--fusion-fraction must be between 0 and 1 (exclusive), not {fusion_fraction}")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(train))
    fusion_count = round(len(train) * fusion_fraction)
    held_out, kept = order[:fusion_count], order[fusion_count:]
    return train.iloc[kept].reset_index(drop=True), train.iloc[held_out].reset_index(drop=True)


def _boosted(
    data: CensusData, library: str, task_name: str, columns: list[str], folder: Path, rows: list[Row]
) -> FusionSource:
    """A boosted-tree model on every column, early-stopped on the validation rows, exported by onnxmltools."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    task = _task(data, task_name)
    train, validation = (frame[columns].to_numpy(dtype=np.float32) for frame in (data.train, data.validation))
    labels = data.train[task.label].to_numpy(), data.validation[task.label].to_numpy()
    initial = [(TREE_INPUT, FloatTensorType([None, len(columns)]))]
    started = time.perf_counter()
    if library == "lightgbm":
        import lightgbm

        model: Any = lightgbm.LGBMClassifier(
            n_estimators=400, learning_rate=0.05, num_leaves=31, min_child_samples=20, n_jobs=2, verbose=-1
        )
        model.fit(
            train, labels[0], eval_set=[(validation, labels[1])], callbacks=[lightgbm.early_stopping(20, verbose=False)]
        )
        converted = onnxmltools.convert_lightgbm(model, initial_types=initial, zipmap=False)
    else:
        import xgboost

        model = xgboost.XGBClassifier(
            n_estimators=400, learning_rate=0.1, max_depth=6, n_jobs=2, early_stopping_rounds=20, eval_metric="auc"
        )
        model.fit(train, labels[0], eval_set=[(validation, labels[1])], verbose=False)
        # onnxmltools converts every boosted tree; keep the early-stopped number of rounds only.
        model = xgboost.XGBClassifier(n_estimators=model.best_iteration + 1, learning_rate=0.1, max_depth=6, n_jobs=2)
        model.fit(train, labels[0], verbose=False)
        converted = onnxmltools.convert_xgboost(model, initial_types=initial)
    seconds = time.perf_counter() - started
    path = folder / f"{task_name}_{library}.onnx"
    path.write_bytes(converted.SerializeToString())
    source = FusionSource(
        name=f"{task_name}_{library}",
        task=task_name,
        loaded=load_model(path.read_bytes()),
        input_columns={TREE_INPUT: tuple(columns)},
    )
    estimator = find_estimator(source.model)
    trees = estimator.tree_count if estimator is not None else 0
    rows.append(_source_row(data, source, task, seconds, f"{trees} trees, onnxmltools"))
    return source


def _neural(
    data: CensusData, family: str, task_name: str, training: TrainConfig, folder: Path, rows: list[Row]
) -> FusionSource:
    task = _task(data, task_name)
    torch.manual_seed(0)
    model = build_single_task_model(family, data.schema, task)
    started = time.perf_counter()
    result = train_model(model, [task], data.train, data.validation, data.schema, training)
    seconds = time.perf_counter() - started
    path = export_onnx(model, data.schema, task, folder / f"{task_name}_{family}.onnx", dynamo=False)
    source = FusionSource(name=f"{task_name}_{family}", task=task_name, loaded=load_model(path.read_bytes()))
    note = f"best epoch {result.best_epoch}/{len(result.history)}"
    rows.append(_source_row(data, source, task, seconds, note))
    return source


def _source_row(data: CensusData, source: FusionSource, task: Task, seconds: float, note: str) -> Row:
    scores = run_model(source.model, source.feed(data.test))[source.signature.output_name]
    auc = task_metric(task, scores, data.test[task.label].to_numpy())
    values = {name: auc if name == task.name else float("nan") for name in TASKS}
    note = f"trained on {len(data.train):,} source rows; {note}"
    return Row(f"source {source.name}", values["income"], values["never_married"], seconds, note)


def _baseline(data: CensusData, sources: list[FusionSource], kind: str, training: TrainConfig, rows: list[Row]) -> None:
    splits = {"train": as_table(data.train), "validation": as_table(data.validation), "test": as_table(data.test)}
    started = time.perf_counter()
    baseline = train_baseline(kind, data.tasks, sources, splits, training)
    test = {
        t.name: task_metric(t, baseline.predictions["test"][t.name], data.test[t.label].to_numpy()) for t in data.tasks
    }
    note = (
        f"trained on all {len(data.train):,} training rows (no sources); "
        f"best epoch {baseline.training.best_epoch}/{len(baseline.training.history)}"
    )
    rows.append(
        Row(
            f"{kind.upper()} (from scratch)", test["income"], test["never_married"], time.perf_counter() - started, note
        )
    )


def _task(data: CensusData, name: str) -> Task:
    return next(task for task in data.tasks if task.name == name)


def _table(rows: list[Row]) -> str:
    header = ("model", "income AUC", "never_married AUC", "wall s", "notes")
    cells = [(r.model, auc_cell(r.income), auc_cell(r.never_married), f"{r.seconds:.1f}", r.note) for r in rows]
    return markdown_table(header, cells)


def _targets(rows: list[Row], results: dict[str, FusionResult]) -> list[str]:
    sources = [row for row in rows if row.model.startswith("source")]
    best = {task: max(getattr(row, task) for row in sources if not pd.isna(getattr(row, task))) for task in TASKS}
    lines = []
    for strategy, result in results.items():
        fused = next(row for row in rows if row.model == f"fused ({strategy})")
        fallbacks = result.report.fallbacks
        # A task that fell back is answered by its best source: ">= best source" would hold by construction.
        holds = not fallbacks and all(getattr(fused, task) >= best[task] for task in TASKS)
        answered = ", ".join(f"{task} fell back to {source}" for task, source in fallbacks.items()) or "no fallback"
        lines.append(
            f"target [{strategy}] test AUC >= best source on both tasks, answered by the fused head: "
            f"{'PASS' if holds else 'FAIL'} (income {fused.income:.4f} vs {best['income']:.4f}, never_married "
            f"{fused.never_married:.4f} vs {best['never_married']:.4f}; {answered})"
        )
    return lines


if __name__ == "__main__":
    main()
