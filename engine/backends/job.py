"""The job template both backends run: open, settle, plan, check, count, run, commit, report.

A backend is an `Executor`: how the rows are produced (this machine's process pool and model, or
Ray Data's actors) and how they are committed. Everything else is here, once: the manifest and
output folder checks, the model plan and its description in the run record, the option checks
(`--language`, a rerun's settings), the counts, the records and the summary; so the backends
cannot drift (issue 25 item 3).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

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
from engine.config import TranscribeConfig
from engine.decode.models import model_fingerprint
from engine.decode.plan import ModelPlan
from engine.decode.stream import language_problem
from engine.errors import ConfigError, ModelLoadError, OutputError, TooManyErrors
from engine.io import storage
from engine.io.idset import IdSet
from engine.io.manifest import Manifest
from engine.io.retry import ids_to_skip, settle
from engine.io.writer import PartWriter
from engine.types import Outcome

MULTILINGUAL_VOCABULARY = 51865  # CTranslate2's rule: a Whisper vocabulary this large or larger


@dataclass(frozen=True)
class Events:
    """What a caller hears of a run (the CLI's progress); each may be None."""

    on_outcome: Callable[[Outcome, RunSummary], None] | None = None
    on_start: Callable[[int, int], None] | None = None  # shard rows, rows already done
    on_loading: Callable[[str], None] | None = None  # what model loads where


@dataclass
class Job:
    """An open job, as the executor runs it: options made effective, the model planned."""

    config: TranscribeConfig
    manifest: Manifest
    writer: PartWriter
    plan: ModelPlan
    done: IdSet  # ids the output holds already (skipped)
    summary: RunSummary = field(default_factory=RunSummary)

    def started(self, events: Events) -> None:
        """Tell the caller that work starts (the executor calls it once, when its model is
        ready), with this shard's rows and how many of them the output already holds."""
        if events.on_start is not None:
            events.on_start(self.summary.manifest_rows, self.summary.skipped_done)


class Executor(Protocol):
    """How one backend executes a job; `run_job` calls these in order."""

    def open(self, config: TranscribeConfig) -> None:
        """Before the job opens: the backend's own refusals and a killed run's leftovers."""

    def settle(self, config: TranscribeConfig) -> None:
        """With the folder held, before its ids are read: adopt what a killed run left."""

    def plan(self, config: TranscribeConfig) -> tuple[TranscribeConfig, ModelPlan]:
        """The model as it will run (where the model runs), and the options made effective."""

    def run(self, job: Job, events: Events) -> None:
        """Produce the rows still to do, calling `job.started` once as work starts; count
        what is written into `job.summary`."""

    def commit(self, job: Job) -> None:
        """Make the rows written final (also after a failed run); `job.summary` counts them."""


def run_job(config: TranscribeConfig, executor: Executor, events: Events) -> dict[str, Any]:
    """Run a whole job with `executor`: the sequence every backend follows.

    Returns:
        The run summary, also written beside the output's parts.

    Raises:
        EngineError: a bad manifest, model, option or output folder (before any work), or an
            error budget exceeded (after committing the rows done so far).
    """
    started = time.monotonic()
    executor.open(config)
    manifest, writer = open_job(config)
    held = hold_output(writer)  # refused while another run writes this shard
    try:
        return _run_held(config, executor, (manifest, writer), events, started)
    finally:
        held.release()


def _run_held(config: TranscribeConfig, executor: Executor, opened: tuple[Manifest, PartWriter],
              events: Events, started: float) -> dict[str, Any]:
    manifest, writer = opened
    executor.settle(config)
    done, retried = ids_to_skip(config.output, config.run.retry_errors)  # settles first
    config, plan = executor.plan(config)
    config = replace(config, batch=config.batch.for_device(plan.device))  # recorded as run
    model = describe_model(plan, config)
    check_options(config, model)
    job = Job(config, manifest, writer, plan, done, RunSummary(mixed=check_rerun(config, model)))
    job.summary.manifest_rows, job.summary.skipped_done = count_rows(manifest, done,
                                                                     config.run.shard)
    start_report(writer, config, model, job.summary)  # the settings, before any row
    failed = True
    try:
        executor.run(job, events)
        failed = False
    finally:
        report = _finish(job, executor, (model, started), retried, failed)
    if job.summary.stopped:
        raise TooManyErrors(f"run stopped: {job.summary.stopped} (the error budget); "
                            f"rows written so far are kept in {config.output}")
    return report


def _finish(job: Job, executor: Executor, run: tuple[dict[str, Any], float], retried: int,
            failed: bool) -> dict[str, Any]:
    """Commit the rows written, settle retried rows, rewrite the run record; a folder that
    refuses writes (full, read-only) keeps its committed parts and the record written at the
    start when even the record cannot be rewritten."""
    model, started = run
    writer, summary = job.writer, job.summary
    executor.commit(job)
    if retried and writer.broken is None:  # their earlier error rows go only after the new
        settle(job.config.output)
    summary.wall_s = time.monotonic() - started
    if failed and summary.rows == 0:  # a start that failed leaves nothing behind
        if writer.record_name is not None:
            with contextlib.suppress(OSError):
                storage.delete(storage.join(job.config.output, writer.record_name))
        return {}
    state = "failed" if failed or writer.broken is not None else (
        "stopped" if summary.stopped else "finished")
    report = build_report(job.config, model, summary)
    try:
        return save_report(writer, report, state)
    except OutputError:
        if writer.broken is None:
            raise
        return report  # the folder refuses everything now: the start record stays


def describe_model(plan: ModelPlan, config: TranscribeConfig) -> dict[str, Any]:
    """The model as the run record (`.batchscribe/runs/`) keeps it, from the plan that the
    backend loads: the one source of the record's model description."""
    devices = len(config.model.device_index) if plan.device == "cuda" else 1
    return {"path": plan.path, "sha256_16": model_fingerprint(plan.path),
            "device": plan.device, "compute_type": plan.compute_type,
            "replicas_per_device": plan.replicas, "devices": devices, "n_mels": plan.n_mels,
            "encoder": "torch" if plan.torch_encoder else "ctranslate2",
            "features": "device" if plan.features_on_device else "workers",
            "multilingual": is_multilingual(plan.path)}


def is_multilingual(path: str) -> bool:
    """Whether the Whisper model in `path` is multilingual, read as CTranslate2 decides it: from
    the size of the folder's vocabulary file, without loading the model.

    Raises:
        ModelLoadError: the folder has no readable vocabulary.json or vocabulary.txt.
    """
    for name in ("vocabulary.json", "vocabulary.txt"):
        location = os.path.join(path, name)
        if not os.path.isfile(location):
            continue
        try:
            with open(location, encoding="utf-8") as f:
                size = len(json.load(f)) if name.endswith(".json") else sum(1 for _ in f)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{location} is not readable: {e}") from e
        return size >= MULTILINGUAL_VOCABULARY
    raise ModelLoadError(f"{path} has no vocabulary.json or vocabulary.txt (convert the "
                         "checkpoint again: CTranslate2 writes one)")


def check_options(config: TranscribeConfig, model: dict[str, Any]) -> None:
    """Refuse, once and before any row, a language or task that the model cannot take.

    Raises:
        ConfigError: the language or task is not valid for this model.
    """
    problem = language_problem(bool(model["multilingual"]), config.decode.language or "en",
                               config.decode.task)
    if problem:
        raise ConfigError(problem)
