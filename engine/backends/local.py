"""The local backend: one process drives the model, a process pool prepares the audio.

manifest -> decode/VAD/features (process pool) -> language detection -> batcher -> model (async)
-> collector -> writer. Every stage is a bounded iterator, so memory stays flat whatever the
manifest's size, and the model decodes one batch while the pool prepares the next files.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from itertools import chain
from typing import Any

from engine.backends.common import (
    RunSummary,
    build_report,
    check_rerun,
    count_rows,
    hold_output,
    open_job,
    save_report,
    start_report,
)
from engine.backends.leftovers import features_prefix, remove_dead_runs_temporaries
from engine.backends.pool import OrderedPool
from engine.config import TranscribeConfig
from engine.decode.plan import ModelPlan, plan_model
from engine.decode.runner import ModelRunner
from engine.decode.stream import check_language_options, decode_stream
from engine.errors import OutputError, TooManyErrors
from engine.io import storage
from engine.io.manifest import Manifest
from engine.io.retry import ids_to_skip, settle
from engine.io.writer import PartWriter
from engine.prepare.stage import Preparer
from engine.stopping import deferred
from engine.telemetry import turn_off_telemetry
from engine.types import AudioItem, ItemError, Outcome


def transcribe_locally(config: TranscribeConfig,
               on_outcome: Callable[[Outcome, RunSummary], None] | None = None,
               on_start: Callable[[int, int], None] | None = None,
               on_loading: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a whole job: read the manifest, transcribe every row not yet done, write the output.

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
    started = time.monotonic()
    turn_off_telemetry()  # before any process of the run loads onnxruntime
    remove_dead_runs_temporaries()
    manifest, writer = open_job(config)
    held = hold_output(writer)  # refused while another run writes this shard
    try:
        return _run(config, manifest, writer, started, (on_outcome, on_start, on_loading))
    finally:
        held.release()


def _run(config: TranscribeConfig, manifest: Manifest, writer: PartWriter, started: float,
         callbacks: tuple[Callable[[Outcome, RunSummary], None] | None,
                          Callable[[int, int], None] | None,
                          Callable[[str], None] | None]) -> dict[str, Any]:
    on_outcome, on_start, on_loading = callbacks
    done, retried = ids_to_skip(config.output, config.run.retry_errors)  # settles first
    plan = plan_model(config.model)
    config = replace(config, batch=config.batch.for_device(plan.device))  # recorded as run
    summary = RunSummary()
    items = manifest.items(config.run.passthrough, skip=done, shard=config.run.shard)
    runner: ModelRunner | None = None
    model: dict[str, Any] = {}
    loading: Future[tuple[ModelRunner, float]] | None = None
    failed = True
    commit = True  # the output is committed at the end, unless the model or a check failed
    report: dict[str, Any] = {}
    try:
        # the model loads while the workers start and decode the first files; long files' chunk
        # features (or samples, for the GPU's log-mel) wait in spill_dir for the model
        with ThreadPoolExecutor(1, thread_name_prefix="model-load") as loader:
            if on_loading is not None:
                on_loading(f"{plan.path} ({plan.device}, {plan.compute_type})")
            loading = loader.submit(_load_model, config, plan)
            with tempfile.TemporaryDirectory(prefix=features_prefix()) as spill_dir, \
                    OrderedPool(partial(Preparer, config.vad, plan.n_mels, spill_dir,
                                        features_on_device=plan.features_on_device),
                                config.run.workers, on_crash=worker_crashed) as pool:
                prepared = pool.map(items)
                commit = False
                first = next(prepared, None)
                runner, summary.timings.model_load_s = loading.result()
                model = runner.describe()
                check_language_options(runner, config)
                summary.mixed = check_rerun(config, model)
                summary.manifest_rows, summary.skipped_done = count_rows(manifest, done,
                                                                         config.run.shard)
                start_report(writer, config, model, summary)  # the settings, before any row
                if on_start is not None:
                    on_start(summary.manifest_rows, summary.skipped_done)
                commit = True
                head = [] if first is None else [first]
                for outcome in decode_stream(chain(head, prepared), runner, config,
                                             summary.timings):
                    with deferred():  # a stop signal waits: the row is written and counted
                        writer.write(outcome)
                        summary.add(outcome)
                    if on_outcome is not None:
                        on_outcome(outcome, summary)
                    budget = config.run.max_errors
                    if budget is not None and summary.counts["error"] > budget:
                        summary.stopped = f"more than {budget} items failed"
                        break
        failed = False
    finally:
        if runner is None and loading is not None and loading.done() \
                and loading.exception() is None:  # loaded for a start that failed
            runner = loading.result()[0]
        if runner is not None:
            runner.close(wait=not failed)  # stopped: the batches in flight are not waited for
        if commit:
            report = _finish(writer, config, (model, summary, started), retried, failed)
    if summary.stopped:
        raise TooManyErrors(f"run stopped: {summary.stopped} (the error budget); "
                            f"rows written so far are kept in {config.output}")
    return report


def _finish(writer: PartWriter, config: TranscribeConfig,
            run: tuple[dict[str, Any], RunSummary, float], retried: int,
            failed: bool) -> dict[str, Any]:
    """Commit the rows buffered, settle retried rows, rewrite the run record; a folder that
    refuses writes (full, read-only) keeps its committed parts and the record written at the
    start when even the record cannot be rewritten."""
    model, summary, started = run
    with contextlib.suppress(OutputError):  # already raised by the write that failed
        writer.commit()
    if retried and writer.broken is None:  # their earlier error rows go only after the new
        settle(config.output)
    summary.wall_s = time.monotonic() - started
    if failed and summary.rows == 0:  # a start that failed leaves nothing behind
        if writer.record_name is not None:
            with contextlib.suppress(OSError):
                storage.delete(storage.join(config.output, writer.record_name))
        return {}
    state = "failed" if failed or writer.broken is not None else (
        "stopped" if summary.stopped else "finished")
    report = build_report(config, model, summary)
    try:
        return save_report(writer, report, state)
    except OutputError:
        if writer.broken is None:
            raise
        return report  # the folder refuses everything now: the start record stays


def _load_model(config: TranscribeConfig, plan: ModelPlan) -> tuple[ModelRunner, float]:
    """The model that `plan` describes, and how long it took to load."""
    started = time.monotonic()
    runner = ModelRunner(config.model, config.decode, plan)
    return runner, time.monotonic() - started


def worker_crashed(item: AudioItem) -> ItemError:
    return ItemError(item, "decode", "WorkerCrash",
                     f"{item.source}: the decode worker died on this file 3 times (a decoder "
                     "crash, or out of memory); a rerun retries it", kind="transient")
