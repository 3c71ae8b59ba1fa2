"""A bounded, ordered process pool for the CPU stage.

Keeps at most `window` items in flight, yields results in input order, and builds the per-worker
state (a `Preparer`) once per process. With `workers=0` it runs in the calling process.

A worker that dies (a decoder crash, the kernel's OOM killer) costs only the item it was on:
the pool restarts, the item is retried alone (three times, with a pause: on a loaded machine the
OOM killer may take a worker whatever it runs), and if it kills a worker every time, `on_crash`
turns it into a result (an error row, transient). The machinery failing is not an item's failure:
every (re)started pool must answer a ping first, and a pool that cannot start (3 tries), or whose
workers cannot build their state, raises `WorkersFailed` (one line) and turns no item into a result.

Workers are spawned without re-running the caller's `__main__` (they need nothing from it), so a
script that calls the engine at top level, with no `if __name__ == "__main__":` guard, works.
They ignore SIGINT (the main process decides how to stop: Ctrl-C in a terminal reaches the whole
process group) and exit by themselves within a second of the main process's death, whatever
killed it, so that neither they nor multiprocessing's resource tracker (which lives as long as
any of them holds its pipe) outlive the run.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any, Generic, TypeVar

from engine.errors import EngineError
from engine.telemetry import turn_off_telemetry

In = TypeVar("In")
Out = TypeVar("Out")

_worker_fn: Any = None
# Each worker is one process doing one item at a time: BLAS/OpenMP thread pools inside it only
# oversubscribe the cores (measured on a 16-core GPU host: 8 workers ran 8x slower without this).
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PARENT_POLL_S = 0.5
CRASHES_IN_A_ROW = 5  # items that each killed a worker TRIES times, none done between: machinery
TRIES = 3  # starts of a pool, and runs of an item alone after a worker died on it
BACKOFF_S = 1.0  # times the attempt: a loaded machine gets time to free memory


class WorkersFailed(EngineError):
    """The decode worker processes cannot start or keep dying: the run stops, no row is blamed."""


class _StartFailure:
    """What a worker whose state could not be built answers (the parent raises it)."""

    def __init__(self, message: str) -> None:
        self.message = message


def _init_worker(factory: Callable[[], Callable[[Any], Any]], parent_pid: int) -> None:
    global _worker_fn
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    turn_off_telemetry()  # before the factory builds the VAD session (onnxruntime)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True,
                     name="watch-parent").start()
    try:
        _worker_fn = factory()
    except Exception as e:  # noqa: BLE001 (the first ping reports it as one line)
        _worker_fn = _StartFailure(f"{type(e).__name__}: {e}")


def _exit_with_parent(parent_pid: int) -> None:
    """Exit when the main process is gone (orphans are re-parented, so the ppid changes)."""
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def _call_worker(item: Any) -> Any:
    return _worker_fn(item)


def _ping(_: object = None) -> _StartFailure | None:
    return _worker_fn if isinstance(_worker_fn, _StartFailure) else None


class _WorkerProcess(SpawnProcess):
    """A spawned process that does not re-run the parent's `__main__` module."""

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        # spawn.get_preparation_data names __main__'s file for the child to run as __mp_main__:
        # a stand-in module, while this one process is launched, leaves it out
        main = sys.modules["__main__"]
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            return SpawnProcess._Popen(process_obj)
        finally:
            sys.modules["__main__"] = main


class _WorkerContext(SpawnContext):
    Process = _WorkerProcess


class OrderedPool(Generic[In, Out]):
    """Map a per-process function over a stream, in order, with bounded memory.

    Args:
        factory: Builds the function in each worker (picklable: a top-level callable or partial).
        workers: Processes; 0 runs inline.
        on_crash: The result for an item that killed a worker each time it ran alone.
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
        self._crashes_in_a_row = 0

    def __enter__(self) -> OrderedPool[In, Out]:
        if self._workers > 0:
            # workers are spawned during the pool's life and inherit the environment then
            self._saved_env = {k: os.environ.get(k) for k in SINGLE_THREAD_ENV}
            for key, value in SINGLE_THREAD_ENV.items():
                os.environ.setdefault(key, value)
            self._executor = self._start()
        return self

    def _start(self) -> ProcessPoolExecutor:
        """A pool whose first worker answered; a start that dies is tried `TRIES` times (a
        loaded machine's OOM killer may take a worker while it imports its libraries)."""
        turn_off_telemetry()  # spawned workers start with it in their environment
        for attempt in range(1, TRIES + 1):
            executor = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=_WorkerContext(),
                initializer=_init_worker, initargs=(self._factory, os.getpid()))
            try:
                failure = executor.submit(_ping).result()
            except BrokenProcessPool as e:
                _stop(executor)
                if attempt == TRIES:
                    raise WorkersFailed(
                        "the decode worker processes could not start (they exited while "
                        f"starting, {TRIES} times; any lines above say why); --workers 0 "
                        "decodes in the main process") from e
                time.sleep(BACKOFF_S * attempt)
                continue
            if failure is not None:
                _stop(executor)
                raise WorkersFailed(
                    f"the decode worker processes could not start: {failure.message}")
            return executor
        raise AssertionError("unreachable")

    def _restart(self) -> None:
        if self._executor is not None:
            _stop(self._executor)
        self._executor = None
        self._executor = self._start()

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._executor is not None:
            if exc_type is None:
                self._executor.shutdown(wait=True, cancel_futures=True)
            else:  # stopped (a signal, an error): what the workers hold is not wanted
                _stop(self._executor)
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
            result = future.result()
            self._crashes_in_a_row = 0
            return result
        except BrokenProcessPool:
            self._restart()
            result = self._run_alone(item)
            others = [other for other, _ in pending]
            pending.clear()
            pending.extend((other, self._submit(other)) for other in others)
            return result

    def _run_alone(self, item: In) -> Out:
        """The item that was running when a worker died, alone, `TRIES` times at most: a worker
        killed from outside (OOM killer) must not fail the row; one that it kills every time,
        does."""
        for attempt in range(1, TRIES + 1):
            try:
                result = self._submit(item).result()
                self._crashes_in_a_row = 0
                return result
            except BrokenProcessPool:
                if attempt < TRIES:
                    time.sleep(BACKOFF_S * attempt)
                self._restart()  # raises WorkersFailed if the pool itself cannot come back
        self._crashes_in_a_row += 1
        if self._crashes_in_a_row >= CRASHES_IN_A_ROW:
            raise WorkersFailed(
                f"the decode workers died on {CRASHES_IN_A_ROW} files in a row, each tried "
                f"{TRIES} times (out of memory? see dmesg); rows written so far are kept, a "
                "rerun retries them")
        return self._on_crash(item)


def _stop(executor: ProcessPoolExecutor) -> None:
    """Kill the workers now (they hold nothing to save), then release the executor."""
    processes = list((getattr(executor, "_processes", None) or {}).values())  # no public API
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join()
    # A worker killed while it sent a result leaves half a message in the result pipe, and
    # CPython's manager thread would wait for the rest forever (shutdown never returns); with
    # this process's write end closed too, the pipe ends and the manager thread sees it broken.
    writer = getattr(getattr(executor, "_result_queue", None), "_writer", None)
    if writer is not None:
        writer.close()
    executor.shutdown(wait=True, cancel_futures=True)
