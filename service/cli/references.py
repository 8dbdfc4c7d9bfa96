"""Models and datasets named as users know them: by id, or by name."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from service.cli.errors import CommandError
from service.client.client import FuseboxClient
from service.client.schemas import Dataset

PAGE = 500


def model_id(client: FuseboxClient, reference: str) -> uuid.UUID:
    """A model id as given, or the id of the model of that name (model names are unique)."""
    if (given := _as_id(reference)) is not None:
        return given
    found = client.list_models(name=reference, limit=1)
    if not found:
        raise CommandError("not found", f"there is no model named '{reference}': `fusebox models list` shows them")
    return found[0].id


def dataset_id(client: FuseboxClient, reference: str) -> uuid.UUID:
    """A dataset id as given, or the id of the one dataset of that name; names may repeat, and training on
    whichever came first would be a silent surprise, so a repeated name asks for the id."""
    if (given := _as_id(reference)) is not None:
        return given
    named = [dataset.id for dataset in _all_datasets(client) if dataset.name == reference]
    if not named:
        raise CommandError("not found", f"there is no dataset named '{reference}': `fusebox datasets list` shows them")
    if len(named) > 1:
        raise CommandError(
            "ambiguous", f"{len(named)} datasets are named '{reference}': give the id (`fusebox datasets list`)"
        )
    return named[0]


def _all_datasets(client: FuseboxClient) -> Iterator[Dataset]:
    """Every page: the API has no filter by dataset name."""
    offset = 0
    while page := client.list_datasets(limit=PAGE, offset=offset):
        yield from page
        offset += PAGE
        if len(page) < PAGE:
            return


def _as_id(reference: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(reference)
    except ValueError:
        return None
