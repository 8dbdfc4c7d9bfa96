"""Reading a text/event-stream: `event:`, `data:` and `id:` fields, an empty line ends each event."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from service.client.schemas import ServerEvent


def parse_events(lines: Iterable[str]) -> Iterator[ServerEvent]:
    event = "message"
    data: list[str] = []
    event_id: str | None = None
    for line in lines:
        if not line:
            if data:
                yield ServerEvent(event=event, data=_decode("\n".join(data)), id=event_id)
            event, data = "message", []
            continue
        if line.startswith(":"):  # a comment: servers send them to keep idle connections open
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
    if data:  # a stream that ends without the final empty line still delivered its last event
        yield ServerEvent(event=event, data=_decode("\n".join(data)), id=event_id)


def _decode(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text
