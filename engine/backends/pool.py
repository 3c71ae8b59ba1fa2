"""A bounded, ordered process pool for the CPU stage.

Keeps at most `window` items in flight, yields results in input order, and builds the per-worker
state (a `Preparer`) once per process. With `workers=0` it runs in the calling process.
A worker that dies (a decoder crash, the kernel's OOM killer) costs only the item it was on:
the pool restarts, the item is retried alone, and if it kills a worker again, `on_crash`
turns it into a result (an error row).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

_worker_fn: Any = None
# Each worker is one process doing one item at a time: BLAS/OpenMP thread pools inside it only
# oversubscribe the cores (measured on a 16-core GPU host: 8 workers ran 8x slower without this).
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


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
        on_crash: The result for an item that killed a worker twice.
        window: Items submitted ahead of the consumer.
    """

    def __init__(self, factory: Callable[[], Callable[[In], Out]], workers: int,
                 on_crash: Callable[[In], Out], window: int | None = None) -> None:
        self._factory = factory
        self._on_crash = on_crash
        self._workers = workers
        self._window = window or max(4, workers * 8)
        self._executor: ProcessPoolExecutor | None = None
        self._saved_env: dict[str, str | None] = {}

    def __enter__(self) -> OrderedPool[In, Out]:
        if self._workers > 0:
            # workers are spawned during the pool's life and inherit the environment then
            self._saved_env = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
            for key, value in SINGLE_THREAD_ENV.items():
                os.environ.setdefault(key, value)
            self._executor = self._start()
        return self

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self._factory,),
        )

    def _restart(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._start()

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _submit(self, item: In) -> Future[Out]:
        if self._executor is None:
            raise RuntimeError("OrderedPool used outside its `with` block")
        try:
            return self._executor.submit(_call_worker, item)
        except BrokenProcessPool as e:  # broke since the last result: handled like the others
            failed: Future[Out] = Future()
            failed.set_exception(e)
            return failed

    def map(self, items: Iterable[In]) -> Iterator[Out]:
        if self._executor is None:
            fn = self._factory()
            yield from (fn(item) for item in items)
            return
        pending: deque[tuple[In, Future[Out]]] = deque()
        for item in items:
            pending.append((item, self._submit(item)))
            if len(pending) >= self._window:
                yield self._next_result(pending)
        while pending:
            yield self._next_result(pending)

    def _next_result(self, pending: deque[tuple[In, Future[Out]]]) -> Out:
        item, future = pending.popleft()
        try:
            return future.result()
        except BrokenProcessPool:
            self._restart()
            result = self._run_alone(item)
            others = [other for other, _ in pending]
            pending.clear()
            pending.extend((other, self._submit(other)) for other in others)
            return result

    def _run_alone(self, item: In) -> Out:
        try:
            return self._submit(item).result()
        except BrokenProcessPool:
            self._restart()
            return self._on_crash(item)
