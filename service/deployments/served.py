"""What a name and version serve, remembered for a moment: at batch 1 a database round trip per request
would cost as much as the model. A new version or changed batching reaches every API process within
`inference_deployment_cache_s`; changes made through this process apply at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

from starlette.concurrency import run_in_threadpool

from service.core.config import get_settings
from service.core.database import get_session_factory
from service.deployments.service import find_deployment

_Key = tuple[str, str, str | None]


@dataclass(frozen=True)
class Served:
    name: str
    version: int
    sha256: str
    max_batch_size: int | None
    max_batch_wait_ms: float | None


class ServedCache:
    def __init__(self, ttl_s: float, capacity: int = 4096) -> None:
        self.ttl_s = ttl_s
        self.capacity = capacity
        self._entries: dict[_Key, tuple[float, Served]] = {}

    def get(self, key: _Key) -> Served | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: _Key, served: Served) -> None:
        if len(self._entries) >= self.capacity:
            self._entries.clear()  # only names that exist get here; a full cache is rare and refills
        self._entries[key] = (time.monotonic() + self.ttl_s, served)

    def forget(self, tenant_id: str, name: str) -> None:
        for key in [key for key in self._entries if key[:2] == (tenant_id, name)]:
            del self._entries[key]


async def resolve(tenant_id: str, name: str, version: str | None) -> Served:
    """The deployment behind `name` (its newest version when `version` is None); NotFound otherwise."""
    cache = get_served_cache()
    key = (tenant_id, name, version)
    served = cache.get(key)
    if served is None:
        served = await run_in_threadpool(_lookup, tenant_id, name, version)
        cache.put(key, served)
    return served


def _lookup(tenant_id: str, name: str, version: str | None) -> Served:
    with get_session_factory()() as session:
        deployment = find_deployment(session, tenant_id, name, version)
        return Served(
            name=deployment.name,
            version=deployment.version,
            sha256=deployment.fused_model.sha256,
            max_batch_size=deployment.max_batch_size,
            max_batch_wait_ms=deployment.max_batch_wait_ms,
        )


@lru_cache
def get_served_cache() -> ServedCache:
    return ServedCache(get_settings().inference_deployment_cache_s)
