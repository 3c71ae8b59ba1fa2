"""The backends: the one place that chooses how a job runs (this machine, or Ray Data).

Both run one job template (`job.run_job`: open, settle, plan, check, count, run, commit,
report) and differ only in how they execute (`local.LocalExecutor`, `ray_data.RayExecutor`);
they run the same stages (`engine.prepare`, `engine.decode`) and write the same output
(`engine.io`); no stage imports a backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.backends.common import RunSummary
from engine.config import TranscribeConfig
from engine.types import Outcome


def transcribe(config: TranscribeConfig,
               on_outcome: Callable[[Outcome, RunSummary], None] | None = None,
               on_start: Callable[[int, int], None] | None = None,
               on_loading: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a whole job: read the manifest, transcribe every row not yet done, write the output.

    Args:
        config: The run's options; `config.backend` picks the backend.
        on_outcome: Called after each row is written (progress; the local backend only).
        on_start: Called once, before work starts, with this shard's manifest rows and how many
            of them the output already holds.
        on_loading: Called once, as the model starts loading, with what is loaded where (the
            local backend only).

    Returns:
        The run summary, also written beside the output's parts.

    Raises:
        EngineError: a bad manifest, model, option or output folder (before any work), or an
            error budget exceeded (after committing the rows done so far).
    """
    if config.backend == "ray":
        from engine.backends.ray_data import transcribe_on_ray

        return transcribe_on_ray(config, on_start)
    from engine.backends.local import transcribe_locally

    return transcribe_locally(config, on_outcome, on_start, on_loading)
