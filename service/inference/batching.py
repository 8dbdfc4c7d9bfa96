"""Dynamic batching: concurrent requests for one model stacked into one ONNX Runtime call.

A request that finds its model idle runs at once, so batching costs nothing at low load. While a call
for the model is in flight, requests gather; they go together when that call ends, when they reach
`max_rows` rows, or when the first of them has waited `max_wait_s`, whichever comes first. The event loop
only queues and hands out results; stacking, the call and splitting run on the ONNX Runtime threads.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial

import numpy as np

from service.core.config import get_settings
from service.core.errors import BadRequest
from service.deployments.batching import BatchStats
from service.inference.runtime import RuntimeModel

Result = dict[str, np.ndarray]


@dataclass
class _Waiting:
    feeds: Mapping[str, np.ndarray]
    rows: int
    outputs: list[str]
    future: asyncio.Future[Result] = field(repr=False)


class Batcher:
    def __init__(
        self,
        model: RuntimeModel,
        executor: Executor,
        max_rows: int,
        max_wait_s: float,
        stats: BatchStats | None = None,
    ) -> None:
        self.model = model
        self.executor = executor
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self.stats = stats if stats is not None else BatchStats()
        """What it ran; batcher_for hands it the counters deployments keep per model file."""
        self._waiting: list[_Waiting] = []
        self._waiting_rows = 0
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None

    @property
    def enabled(self) -> bool:
        return self.max_wait_s > 0 and self.max_rows > 1 and self.model.batchable

    async def run(self, feeds: Mapping[str, np.ndarray], rows: int, outputs: list[str]) -> Result:
        loop = asyncio.get_running_loop()
        self.stats.requests += 1
        if not self.enabled:
            self.stats.runs += 1
            return await loop.run_in_executor(self.executor, self.model.run, feeds, outputs)
        if rows >= self.max_rows:
            return await self._run_alone(loop, feeds, outputs)
        if self._waiting_rows + rows > self.max_rows:
            self._dispatch(loop)  # what waits fills a batch as well as it can already
        waiting = _Waiting(feeds, rows, outputs, loop.create_future())
        self._waiting.append(waiting)
        self._waiting_rows += rows
        if self._running == 0 or self._waiting_rows >= self.max_rows:
            self._dispatch(loop)
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait_s, self._dispatch, loop)
        return await waiting.future

    async def _run_alone(
        self, loop: asyncio.AbstractEventLoop, feeds: Mapping[str, np.ndarray], outputs: list[str]
    ) -> Result:
        """A request that fills a batch by itself; others wait for it like for any batch."""
        self._running += 1
        self.stats.runs += 1
        try:
            return await loop.run_in_executor(self.executor, self.model.run, feeds, outputs)
        finally:
            self._running -= 1
            if self._waiting and self._running == 0:
                self._dispatch(loop)

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._waiting:
            return
        batch, self._waiting, self._waiting_rows = self._waiting, [], 0
        self._running += 1
        self.stats.runs += 1
        work = loop.run_in_executor(self.executor, run_together, self.model, batch)
        work.add_done_callback(partial(self._deliver, loop, batch))

    def _deliver(
        self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting], work: asyncio.Future[list[Result | Exception]]
    ) -> None:
        self._running -= 1
        error = work.exception()
        results = [error] * len(batch) if error is not None else work.result()
        for waiting, result in zip(batch, results, strict=True):
            if waiting.future.done():  # the client went away
                continue
            if isinstance(result, BaseException):
                waiting.future.set_exception(result)
            else:
                waiting.future.set_result(result)
        if self._waiting and self._running == 0:
            self._dispatch(loop)


def run_together(model: RuntimeModel, batch: list[_Waiting]) -> list[Result | Exception]:
    """One call per group of requests whose tensors stack (same trailing dimensions), split per request.

    A call that fails is retried request by request, so that one bad request fails alone."""
    groups: dict[tuple[tuple[int, ...], ...], list[int]] = defaultdict(list)
    for position, waiting in enumerate(batch):
        groups[tuple(values.shape[1:] for values in waiting.feeds.values())].append(position)
    results: list[Result | Exception] = [BadRequest("not run")] * len(batch)
    for positions in groups.values():
        members = [batch[position] for position in positions]
        for position, result in zip(positions, _run_group(model, members), strict=True):
            results[position] = result
    return results


def _run_group(model: RuntimeModel, members: list[_Waiting]) -> list[Result | Exception]:
    if len(members) == 1:
        return _run_each(model, members)
    wanted = {name for waiting in members for name in waiting.outputs}
    outputs = [name for name in model.output_names if name in wanted]
    names = list(members[0].feeds)
    stacked = {name: np.concatenate([waiting.feeds[name] for waiting in members]) for name in names}
    total = sum(waiting.rows for waiting in members)
    try:
        together = model.run(stacked, outputs)
    except BadRequest:
        return _run_each(model, members)
    if any(values.shape[:1] != (total,) for values in together.values()):
        return _run_each(model, members)  # an output that is not one row per input row cannot be split
    results: list[Result | Exception] = []
    start = 0
    for waiting in members:
        stop = start + waiting.rows
        results.append({name: together[name][start:stop] for name in waiting.outputs})
        start = stop
    return results


def _run_each(model: RuntimeModel, members: list[_Waiting]) -> list[Result | Exception]:
    results: list[Result | Exception] = []
    for waiting in members:
        try:
            results.append(model.run(waiting.feeds, waiting.outputs))
        except BadRequest as error:
            results.append(error)
    return results


def batcher_for(model: RuntimeModel, stats: BatchStats, max_rows: int, max_wait_s: float) -> Batcher:
    """The model's batcher for these settings (deployments of one file with equal settings share it)."""
    key = (max_rows, max_wait_s)
    batcher = model.batchers.get(key)
    if batcher is None:
        batcher = model.batchers[key] = Batcher(model, get_executor(), max_rows, max_wait_s, stats)
    return batcher


@lru_cache
def get_executor() -> ThreadPoolExecutor:
    """The threads that run ONNX Runtime for the whole process; it releases the GIL while it computes."""
    return ThreadPoolExecutor(get_settings().inference_parallel_runs, thread_name_prefix="onnxruntime")
