"""Dynamic batching: concurrent requests to one model are run as one onnxruntime call.

A request waits at most ``max_delay`` seconds for others; a batch holds at most
``max_batch_size`` rows. Requests whose inputs differ in anything but the number of rows
are run in separate groups.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import numpy as np

from layerflow.errors import InvalidValueError

Feed = dict[str, np.ndarray]


def _rows(feed: Feed) -> int:
    return len(next(iter(feed.values())))


def _group_key(feed: Feed) -> tuple:
    return tuple((name, array.shape[1:], array.dtype.str) for name, array in sorted(feed.items()))


class Batcher:
    """Queues requests for one model and runs them in batches on a worker thread."""

    def __init__(
        self,
        run: Callable[[Feed], dict[str, np.ndarray]],
        max_batch_size: int,
        max_delay: float,
        on_batch: Callable[[int], None] | None = None,
    ):
        if max_batch_size < 1 or max_delay < 0:
            raise InvalidValueError("max_batch_size must be at least 1 and max_delay at least 0.")
        self.run, self.max_batch_size, self.max_delay = run, max_batch_size, max_delay
        self.on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def predict(self, feed: Feed) -> dict[str, np.ndarray]:
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._serve())
        assert self._queue is not None
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((feed, future))
        return await future

    def close(self) -> None:
        """Stops the worker (the model it serves is gone)."""
        if self._worker is not None:
            self._worker.cancel()

    async def _collect(self) -> list[tuple[Feed, asyncio.Future]]:
        loop = asyncio.get_running_loop()
        queue = self._queue
        assert queue is not None, "predict() creates the queue before the worker starts"
        first = await queue.get()
        items, rows = [first], _rows(first[0])
        deadline = loop.time() + self.max_delay
        while rows < self.max_batch_size:
            remaining = deadline - loop.time()
            if remaining <= 0 and queue.empty():
                break
            try:
                item = queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(queue.get(), remaining)
            except (TimeoutError, asyncio.QueueEmpty):
                break
            items.append(item)
            rows += _rows(item[0])
        return items

    async def _serve(self) -> None:
        while True:
            items = await self._collect()
            groups: dict[tuple, list[tuple[Feed, asyncio.Future]]] = {}
            for item in items:
                groups.setdefault(_group_key(item[0]), []).append(item)
            for group in groups.values():
                await self._run_group(group)

    async def _run_group(self, group: list[tuple[Feed, asyncio.Future]]) -> None:
        feeds = [feed for feed, _ in group]
        merged = {name: np.concatenate([f[name] for f in feeds]) for name in feeds[0]}
        try:
            outputs = await anyio.to_thread.run_sync(self.run, merged)
        except Exception as error:  # noqa: BLE001 - every waiting request gets the error
            for _, future in group:
                if not future.done():
                    future.set_exception(error)
            return
        if self.on_batch:
            self.on_batch(_rows(merged))
        start = 0
        for feed, future in group:
            stop = start + _rows(feed)
            if not future.done():
                future.set_result({name: values[start:stop] for name, values in outputs.items()})
            start = stop
