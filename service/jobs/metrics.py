"""The jobs' Prometheus gauges, read at scrape time and registered on core's registry by service/main.py:

- fusebox_jobs{status}: fusion jobs per status, all tenants, counted in the database.
- fusebox_queue_messages{queue}: jobs waiting in the broker (Redis list length, or message files of
  the filesystem broker).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from service.core.config import get_settings
from service.core.database import get_session_factory
from service.jobs.models import FusionJob, JobStatus
from service.jobs.queue import FUSION_QUEUE, queue_length

log = logging.getLogger("fusebox.metrics")


class JobsByStatus(Collector):
    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with get_session_factory()() as session:
                counts = dict(session.execute(select(FusionJob.status, func.count()).group_by(FusionJob.status)).all())
        except Exception:  # a scrape must still answer the other metrics while the database is away
            log.warning("could not count the jobs for /metrics", exc_info=True)
            return
        family = self._family()
        for status in JobStatus:
            family.add_metric([status.value], counts.get(status, 0))
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("fusebox_jobs", "Fusion jobs by status (all tenants).", labels=["status"])


class QueueLength(Collector):
    def describe(self) -> list[GaugeMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            waiting = queue_length(get_settings())
        except (OSError, redis.RedisError):
            log.warning("could not read the queue length for /metrics", exc_info=True)
            return
        if waiting is not None:
            family = self._family()
            family.add_metric([FUSION_QUEUE], waiting)
            yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("fusebox_queue_messages", "Jobs waiting in the broker queue.", labels=["queue"])
