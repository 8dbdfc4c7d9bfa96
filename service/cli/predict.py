"""`fusebox predict NAME`: rows from a file or the command line in, the deployed model's predictions out."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from fusion.report_table import format_table
from service.cli.remote import server_command
from service.client.client import FuseboxClient


def register_predict_command(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser("predict", help="predictions of a deployed fused model")
    predict.add_argument("model", help="deployment name (the fusion job's name); the newest version answers")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--records", type=Path, help="a CSV file with a header row, a JSON list, or JSON lines")
    source.add_argument("--record", action="append", help="one row as a JSON object (repeatable)")
    predict.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    server_command(predict, _predict)


def _predict(client: FuseboxClient, args: argparse.Namespace) -> int:
    records = _read_records(args.records) if args.records else [json.loads(text) for text in args.record]
    answer = client.predict(args.model, records)
    if args.json:
        print(answer.model_dump_json(indent=2))
        return 0
    print(f"{answer.model_name} version {answer.model_version}")
    tasks = list(answer.predictions[0]) if answer.predictions else []
    rows = [(row, *(prediction[task] for task in tasks)) for row, prediction in enumerate(answer.predictions)]
    print(format_table(("row", *tasks), rows))
    return 0


def _read_records(path: Path) -> list[dict[str, Any]]:
    """Rows from CSV (numbers parsed, empty cells missing), a JSON list of objects, or JSON lines."""
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(text.splitlines())]
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    loaded = json.loads(text)
    return loaded["records"] if isinstance(loaded, dict) else loaded


def _number(text: str) -> int | float | str | None:
    """Integers stay integers (category ids); text that is no number is left for the server to name."""
    if text.strip() == "":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text
