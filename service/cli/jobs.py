"""`fusebox fuse --dataset ... --task ...` (a job on the server) and `fusebox jobs ...`: list, show, follow
live, cancel, download the fused model."""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path
from typing import get_args

from fusion.report_table import format_table
from service.cli.catalog import when
from service.cli.errors import CommandError
from service.cli.references import dataset_id, model_id
from service.cli.remote import Command, add_server_options, on_server, server_command
from service.client.client import FuseboxClient
from service.client.display import JobProgress, report_table
from service.client.schemas import Job, JobSpec, JobStatus, JobTaskSpec

CONNECTION_OPTIONS = frozenset({"url", "api_key"})
"""Global options (and the environment's): they do not by themselves make `fuse` a job on the server."""


def register_job_commands(commands: argparse._SubParsersAction, fuse: argparse.ArgumentParser) -> None:
    """Adds `jobs`, and gives the local `fuse SPEC` its form that starts a job on the server."""
    jobs = commands.add_parser("jobs", help="fusion jobs on the server").add_subparsers(required=True)
    listing = jobs.add_parser("list", help="list fusion jobs, newest first")
    listing.add_argument("--status", choices=get_args(JobStatus), help="only jobs in this state")
    server_command(listing, _list_jobs)
    for name, command, help_text in [
        ("show", _show_job, "one job: status, epochs, error or report"),
        ("follow", _follow_job, "live progress until the job ends, then its report"),
        ("cancel", _cancel_job, "cancel a queued or running job"),
        ("download", _download_model, "write the fused ONNX model of a job that succeeded"),
    ]:
        parser = jobs.add_parser(name, help=help_text)
        parser.add_argument("job", type=uuid.UUID, help="job id (`fusebox jobs list`)")
        server_command(parser, command)
    jobs.choices["download"].add_argument("--out", type=Path, help="file to write (default: <job name>.onnx)")
    _add_server_fuse(fuse)


def _add_server_fuse(fuse: argparse.ArgumentParser) -> None:
    group = fuse.add_argument_group("a job on the server (instead of SPEC)")
    add_server_options(group, default=argparse.SUPPRESS)
    group.add_argument("--dataset", help="training dataset, by id or name")
    group.add_argument(
        "--task", dest="tasks", action="append", metavar="NAME[:TYPE[:CLASSES]]=MODEL,...",
        help="a task and its source models (ids or names); repeat per task",
    )  # fmt: skip
    group.add_argument("--validation-dataset", help="validation dataset, by id or name")
    group.add_argument("--validation-fraction", type=float, help="or: carve validation rows out, e.g. 0.1")
    group.add_argument("--test-dataset", help="optional, by id or name: the report adds test metrics")
    group.add_argument("--name", help="deployment name of the fused model (default: the first task's name)")
    group.add_argument("--strategy", choices=["frozen", "adaptive", "finetune"])
    group.add_argument("--set", dest="hyperparameters", action="append", metavar="KEY=VALUE", help="e.g. max_epochs=5")
    group.add_argument("--baseline", dest="baselines", action="append", choices=["shared_bottom", "mmoe", "ple"])
    group.add_argument("--wait", action="store_true", help="follow the job with a progress bar; print the report")
    options = [action for action in group._group_actions if action.dest not in CONNECTION_OPTIONS]
    server_flags = {action.dest: action.option_strings[0] for action in options}
    run_here = fuse.get_default("run")
    fuse.set_defaults(run=lambda args: _here_or_on_server(args, run_here, server_flags))


def _here_or_on_server(args: argparse.Namespace, run_here: Command, server_flags: dict[str, str]) -> int:
    given = [flag for dest, flag in server_flags.items() if getattr(args, dest) not in (None, False)]
    if args.spec is not None and not given:
        return run_here(args)
    if args.spec is None and args.dataset is not None:
        return on_server(_fuse_on_server)(args)
    if args.spec is not None:
        raise CommandError(
            "usage", f"{', '.join(given)}: for a job on the server; a SPEC file fuses here. Give one or the other"
        )
    raise CommandError("usage", "give a SPEC file (fuse here) or --dataset and --task (a job on the server)")


def _fuse_on_server(client: FuseboxClient, args: argparse.Namespace) -> int:
    if not args.tasks:
        raise CommandError("usage", "a job on the server needs at least one --task NAME=MODEL,...")
    tasks = [_task_spec(client, text) for text in args.tasks]
    optional = {
        "validation_dataset_id": args.validation_dataset and dataset_id(client, args.validation_dataset),
        "validation_fraction": args.validation_fraction,
        "test_dataset_id": args.test_dataset and dataset_id(client, args.test_dataset),
        "strategy": args.strategy,
        "hyperparameters": args.hyperparameters and dict(_hyperparameter(text) for text in args.hyperparameters),
        "baselines": args.baselines,
    }
    spec = JobSpec(
        name=args.name or tasks[0].name,
        tasks=tasks,
        dataset_id=dataset_id(client, args.dataset),
        **{field: value for field, value in optional.items() if value is not None},
    )
    job = client.create_job(spec)
    print(f"job {job.id} {job.status}", file=sys.stderr)
    if not args.wait:
        print(job.id)
        return 0
    return _print_outcome(_follow(client, job.id))


def _list_jobs(client: FuseboxClient, args: argparse.Namespace) -> int:
    rows = [
        (j.id, j.name, j.status, f"{j.progress:.0f}%", f"{j.epoch}/{j.max_epochs}", when(j.created_at))
        for j in client.list_jobs(status=args.status, limit=500)
    ]
    print(format_table(("id", "name", "status", "progress", "epoch", "created"), rows))
    return 0


def _show_job(client: FuseboxClient, args: argparse.Namespace) -> int:
    job = client.get_job(args.job)
    print(f"{job.name} ({job.id}): {job.status}" + (f", {job.stage}" if job.stage and not job.finished else ""))
    print(f"progress {job.progress:.1f}%, epoch {job.epoch}/{job.max_epochs}, created {when(job.created_at)}")
    if job.metrics:
        tasks = list(job.metrics[0].validation)
        rows = [(m.epoch, m.train_loss, *(m.validation.get(task) for task in tasks)) for m in job.metrics]
        print(format_table(("epoch", "train loss", *tasks), rows))
    if job.error:
        print(f"error: {job.error}")
    if job.report:
        print(report_table(job))
    return 0


def _follow_job(client: FuseboxClient, args: argparse.Namespace) -> int:
    return _print_outcome(_follow(client, args.job))


def _cancel_job(client: FuseboxClient, args: argparse.Namespace) -> int:
    job = client.cancel_job(args.job)
    print(f"job {job.id} {job.status}" + (": its worker stops within seconds" if job.cancel_requested else ""))
    return 0


def _download_model(client: FuseboxClient, args: argparse.Namespace) -> int:
    destination = args.out or Path(f"{client.get_job(args.job).name}.onnx")
    print(f"wrote {client.download_model(args.job, destination)}")
    return 0


def _follow(client: FuseboxClient, job_id: uuid.UUID) -> Job:
    """A progress bar and each epoch's metrics on stderr while the job runs; the job as it ended."""
    progress = JobProgress()
    for job in client.watch_job(job_id):
        progress(job)
    return job if job.finished else client.get_job(job_id)


def _print_outcome(job: Job) -> int:
    if job.status != "succeeded":
        raise CommandError(job.status, f"job {job.id}" + (f": {job.error}" if job.error else ""))
    print(report_table(job))
    if job.deployment is not None:
        print(f"deployed as {job.deployment.name} version {job.deployment.version}: {job.deployment.infer_url}")
    return 0


def _task_spec(client: FuseboxClient, text: str) -> JobTaskSpec:
    task, equals, models = text.partition("=")
    name, _, kind = task.partition(":")
    kind, _, classes = kind.partition(":")
    if not equals or not name or not models:
        example = "NAME=MODEL,MODEL (or NAME:TYPE=... / NAME:multiclass:N=...)"
        raise CommandError("usage", f"--task '{text}': write {example}")
    # Validated from the text as typed: the schema parses the type and the class count, and names a wrong one.
    return JobTaskSpec.model_validate(
        {
            "name": name,
            "type": kind or "binary",
            "classes": classes or None,
            "models": [model_id(client, reference.strip()) for reference in models.split(",") if reference.strip()],
        }
    )


def _hyperparameter(text: str) -> tuple[str, str]:
    """The value stays text: the client's typed Hyperparameters parses it, and names a wrong key or value."""
    key, equals, value = text.partition("=")
    if not equals or not key.strip():
        raise CommandError("usage", f"--set '{text}': write KEY=VALUE, e.g. max_epochs=5")
    return key.strip(), value.strip()
