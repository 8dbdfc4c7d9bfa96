"""`fusebox deployments export NAME`: a deployed fused model for Triton or KServe."""

from __future__ import annotations

import argparse
from pathlib import Path

from service.cli.errors import CommandError
from service.cli.remote import server_command
from service.client.client import FuseboxClient


def register_deployment_commands(commands: argparse._SubParsersAction) -> None:
    deployments = commands.add_parser("deployments", help="deployed fused models").add_subparsers(required=True)
    export = deployments.add_parser("export", help="a deployment as a Triton model repository or a KServe manifest")
    export.add_argument("name", help="deployment name (the fusion job's name)")
    export.add_argument("--version", type=int, help="default: the newest version")
    export.add_argument("--format", choices=("triton", "kserve"), default="triton")
    export.add_argument(
        "--out", type=Path, help="default: NAME-vVERSION-triton.tar.gz or NAME-vVERSION-kserve.yaml, here"
    )
    export.add_argument("--storage-uri", help="kserve: where the unpacked Triton repository lies")
    server_command(export, _export)


def _export(client: FuseboxClient, args: argparse.Namespace) -> int:
    version = args.version or _newest_version(client, args.name)
    suffix = "triton.tar.gz" if args.format == "triton" else "kserve.yaml"
    out = args.out or Path(f"{args.name}-v{version}-{suffix}")
    saved = client.export_deployment(args.name, version, out, args.format, args.storage_uri)
    print(f"saved {args.name} version {version} for {args.format}: {saved}")
    if args.format == "triton":
        print(f"run it: tar -xzf {saved} -C models && tritonserver --model-repository=$PWD/models")
    else:
        print(f"apply it (after storageUri points at the unpacked Triton repository): kubectl apply -f {saved}")
    return 0


def _newest_version(client: FuseboxClient, name: str) -> int:
    newest = [deployment for deployment in client.list_deployments(name=name) if deployment.latest]
    if not newest:
        raise CommandError("not found", f"no deployment is named '{name}'")
    return newest[0].version
