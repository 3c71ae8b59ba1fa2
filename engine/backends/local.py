"""The local backend: one process drives the model, a process pool prepares the audio.

manifest -> decode/VAD/features (process pool) -> language detection -> batcher -> model (async)
-> collector -> writer. Every stage is a bounded iterator, so memory stays flat whatever the
manifest's size, and the model decodes one batch while the pool prepares the next files.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from itertools import chain
from typing import Any

from engine.backends.common import RunSummary
from engine.backends.job import Events, Job, run_job
from engine.backends.leftovers import features_prefix, remove_dead_runs_temporaries
from engine.backends.pool import OrderedPool
from engine.config import TranscribeConfig
from engine.decode.plan import ModelPlan, plan_model
from engine.decode.runner import ModelRunner
from engine.decode.stream import decode_stream
from engine.errors import OutputError
from engine.prepare.stage import Preparer
from engine.stopping import deferred
from engine.telemetry import turn_off_telemetry
from engine.types import AudioItem, ItemError, Outcome


def transcribe_locally(config: TranscribeConfig,
               on_outcome: Callable[[Outcome, RunSummary], None] | None = None,
               on_start: Callable[[int, int], None] | None = None,
               on_loading: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a whole job on this machine (`job.run_job` with `LocalExecutor`).

    Args:
        config: The run's options.
        on_outcome: Called after each row is written (progress reporting).
        on_start: Called once, before work starts, with this shard's manifest rows and how many
            of them the output already holds.
        on_loading: Called once, as the model starts loading, with what is loaded where.

    Returns:
        The run summary, also written to the output's .batchscribe/runs/ (see `engine.io.runlog`).

    Raises:
        EngineError: a bad manifest, model, option or output folder (before any work), or an
            error budget exceeded (after committing the rows done so far).
    """
    return run_job(config, LocalExecutor(), Events(on_outcome, on_start, on_loading))


class LocalExecutor:
    """The job's rows from a process pool (decode, VAD, features) and one model in this process.

    The model loads while the workers start and decode the first files; long files' chunk
    features (or samples, for the GPU's log-mel) wait in a spill folder for the model.
    """

    def open(self, config: TranscribeConfig) -> None:
        turn_off_telemetry()  # before any process of the run loads onnxruntime
        remove_dead_runs_temporaries()

    def settle(self, config: TranscribeConfig) -> None:
        pass  # the writer commits whole parts only: a killed run leaves nothing to adopt

    def plan(self, config: TranscribeConfig) -> tuple[TranscribeConfig, ModelPlan]:
        return config, plan_model(config.model)

    def run(self, job: Job, events: Events) -> None:
        config, plan, summary = job.config, job.plan, job.summary
        items = job.manifest.items(config.run.passthrough, skip=job.done, shard=config.run.shard)
        runner: ModelRunner | None = None
        loading: Future[tuple[ModelRunner, float]] | None = None
        failed = True
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="model-load") as loader:
                if events.on_loading is not None:
                    events.on_loading(f"{plan.path} ({plan.device}, {plan.compute_type})")
                loading = loader.submit(_load_model, config, plan)
                with tempfile.TemporaryDirectory(prefix=features_prefix()) as spill_dir, \
                        OrderedPool(partial(Preparer, config.vad, plan.n_mels, spill_dir,
                                            features_on_device=plan.features_on_device),
                                    config.run.workers, on_crash=worker_crashed) as pool:
                    prepared = pool.map(items)
                    first = next(prepared, None)  # the workers start before the model waits
                    runner, summary.timings.model_load_s = loading.result()
                    job.started(events)
                    head = [] if first is None else [first]
                    self._write(job, decode_stream(chain(head, prepared), runner, config,
                                                   summary.timings), events)
            failed = False
        finally:
            if runner is None and loading is not None and loading.done() \
                    and loading.exception() is None:  # loaded for a start that failed
                runner = loading.result()[0]
            if runner is not None:
                runner.close(wait=not failed)  # stopped: the batches in flight are not waited for

    @staticmethod
    def _write(job: Job, outcomes: Iterator[Outcome], events: Events) -> None:
        summary, budget = job.summary, job.config.run.max_errors
        for outcome in outcomes:
            with deferred():  # a stop signal waits: the row is written and counted
                job.writer.write(outcome)
                summary.add(outcome)
            if events.on_outcome is not None:
                events.on_outcome(outcome, summary)
            if budget is not None and summary.counts["error"] > budget:
                summary.stopped = f"more than {budget} items failed"
                break

    def commit(self, job: Job) -> None:
        with contextlib.suppress(OutputError):  # already raised by the write that failed
            job.writer.commit()


def _load_model(config: TranscribeConfig, plan: ModelPlan) -> tuple[ModelRunner, float]:
    """The model that `plan` describes, and how long it took to load."""
    started = time.monotonic()
    runner = ModelRunner(config.model, config.decode, plan)
    return runner, time.monotonic() - started


def worker_crashed(item: AudioItem) -> ItemError:
    return ItemError(item, "decode", "WorkerCrash",
                     f"{item.source}: the decode worker died on this file 3 times (a decoder "
                     "crash, or out of memory); a rerun retries it", kind="transient")
