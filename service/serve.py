"""`python -m service.serve [--host H] [--port P]`: the API in FUSEBOX_API_WORKERS processes behind one port
(uvicorn's supervisor; it restarts a process that dies), each with its own ONNX Runtime sessions and, when
FUSEBOX_GRPC_PORT is set, its own gRPC server on that port (SO_REUSEPORT).

With several processes, /metrics must sum them all: prometheus_client's multiprocess mode keeps each
process's values in files under PROMETHEUS_MULTIPROC_DIR (default var_dir/prometheus), emptied here before
any process starts, so that totals begin at zero with the service. The migrations and the first tenant are
done here once, rather than raced over by every process's start-up.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from service.core.config import Settings, get_settings
from service.core.metrics import MULTIPROCESS_DIR


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    settings = get_settings()
    workers = settings.api_workers
    if workers > 1:
        _prepare_once(settings)
    metrics_dir = os.environ.get(MULTIPROCESS_DIR) or (str(settings.var_dir / "prometheus") if workers > 1 else "")
    if metrics_dir:
        os.environ[MULTIPROCESS_DIR] = str(empty_metrics_dir(Path(metrics_dir)))
    uvicorn.run("service.main:app", host=args.host, port=args.port, workers=workers, log_level=args.log_level)


def empty_metrics_dir(folder: Path) -> Path:
    """The folder, made, without the files of an earlier run (their counts would add to this run's)."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    return folder


def _prepare_once(settings: Settings) -> None:
    from service.main import prepare_database

    prepare_database(settings)
    os.environ["FUSEBOX_MIGRATE_ON_STARTUP"] = "false"
    os.environ["FUSEBOX_BOOTSTRAP_TENANT"] = "false"


if __name__ == "__main__":
    main()
