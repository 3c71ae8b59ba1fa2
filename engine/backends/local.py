"""The local backend: one process drives the model, a process pool prepares the audio.

manifest -> decode/VAD/features (process pool) -> language detection -> batcher -> model (async)
-> collector -> writer. Every stage is a bounded iterator, so memory stays flat whatever the
manifest's size, and the model decodes one batch while the pool prepares the next files.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from engine.backends.common import RunSummary, build_report, open_job, report_name
from engine.backends.pool import OrderedPool
from engine.config import TranscribeConfig
from engine.decode.runner import ModelRunner
from engine.decode.stream import check_language_options, decode_stream
from engine.errors import TooManyErrors
from engine.prepare.stage import Preparer
from engine.types import AudioItem, ItemError, Outcome


def transcribe_locally(config: TranscribeConfig,
               on_outcome: Callable[[Outcome, RunSummary], None] | None = None,
               on_start: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Run a whole job: read the manifest, transcribe every row not yet done, write the output.

    Args:
        config: The run's options.
        on_outcome: Called after each row is written (progress reporting).
        on_start: Called once with the number of manifest rows, before work starts.

    Returns:
        The run summary, also written as run.json in the output folder.

    Raises:
        EngineError: a bad manifest, model, option or output folder (before any work), or an
            error budget exceeded (after committing the rows done so far).
    """
    started = time.monotonic()
    manifest, writer = open_job(config)
    done = writer.done_ids()
    loading = time.monotonic()
    runner = ModelRunner(config.model, config.decode)
    model_load_s = time.monotonic() - loading
    config = replace(config, batch=config.batch.for_device(runner.device))  # recorded in run.json
    check_language_options(runner, config)
    if on_start is not None:
        on_start(manifest.num_rows)

    summary = RunSummary()
    summary.timings.model_load_s = model_load_s
    items = manifest.items(config.run.passthrough, skip=done, shard=config.run.shard)
    try:
        # long files' chunk features wait here between the workers and the model (`Preparer`)
        with tempfile.TemporaryDirectory(prefix="batchscribe-features-") as spill_dir, \
                OrderedPool(partial(Preparer, config.vad, runner.n_mels, spill_dir),
                            config.run.workers, on_crash=worker_crashed) as pool:
            for outcome in decode_stream(pool.map(items), runner, config, summary.timings):
                writer.write(outcome)
                summary.add(outcome)
                if on_outcome is not None:
                    on_outcome(outcome, summary)
                budget = config.run.max_errors
                if budget is not None and summary.counts["error"] > budget:
                    summary.stopped = f"more than {budget} items failed"
                    break
    finally:
        runner.close()
        writer.commit()
        summary.wall_s = time.monotonic() - started
        summary.skipped_done = len(done)
        report = build_report(config, runner.describe(), summary)
        writer.write_json(report_name(config), report)
    if summary.stopped:
        raise TooManyErrors(f"run stopped: {summary.stopped} (the error budget); "
                            f"rows written so far are kept in {config.output}")
    return report


def worker_crashed(item: AudioItem) -> ItemError:
    return ItemError(item, "decode", "WorkerCrash",
                     f"{item.source}: the decode worker died on this file twice (a decoder "
                     "crash, or out of memory)")


