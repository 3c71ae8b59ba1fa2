"""A bounded, ordered process pool for the CPU stage.

Keeps at most `window` items in flight, yields results in input order, and builds the per-worker
state (a `Preparer`) once per process. With `workers=0` it runs in the calling process.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

_worker_fn: Any = None


def _init_worker(factory: Callable[[], Callable[[Any], Any]]) -> None:
    global _worker_fn
    _worker_fn = factory()


def _call_worker(item: Any) -> Any:
    return _worker_fn(item)


class OrderedPool(Generic[In, Out]):
    """Map a per-process function over a stream, in order, with bounded memory.

    Args:
        factory: Builds the function in each worker (picklable: a top-level callable or partial).
        workers: Processes; 0 runs inline.
        window: Items submitted ahead of the consumer.
    """

    def __init__(self, factory: Callable[[], Callable[[In], Out]], workers: int,
                 window: int | None = None) -> None:
        self._factory = factory
        self._workers = workers
        self._window = window or max(4, workers * 8)
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> OrderedPool[In, Out]:
        if self._workers > 0:
            self._executor = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self._factory,),
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def map(self, items: Iterable[In]) -> Iterator[Out]:
        if self._executor is None:
            fn = self._factory()
            yield from (fn(item) for item in items)
            return
        pending: deque[Future[Out]] = deque()
        for item in items:
            pending.append(self._executor.submit(_call_worker, item))
            if len(pending) >= self._window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
