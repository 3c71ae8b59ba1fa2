"""The Ray backend: the engine's stages as a Ray Data pipeline, for clusters.

    read_parquet(manifest) -> DecodeStage (CPU actors: decode, VAD, chunks, features)
    -> ModelStage (actor pool, one model per actor: language, batching, generate, assembly)
    -> write_parquet(staging folder) -> parts renamed into the output folder

The stages call the same code as the local runner (`Preparer`, `decode_stream`, `to_row`);
only the wiring differs. A file's chunks travel together, so a model actor always holds a
whole file and regroups it itself. Ray writes into a staging folder of the output; whole parts
are renamed into place when the run ends, and a rerun first adopts the whole parts a killed run
left there, then skips their ids, as the local runner does.
"""

from __future__ import annotations

import os
import pickle
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from itertools import groupby
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from engine.backends.job import Events, Job
from engine.backends.ray_storage import adopt_staged_remote, ray_location, ray_paths
from engine.config import TranscribeConfig
from engine.decode.model import ModelPlan
from engine.errors import ConfigError, EngineError
from engine.io import storage
from engine.io.idset import IdSet
from engine.io.runlog import META_DIR
from engine.io.writer import PART_PREFIX, PartWriter, part_files, to_row

ITEMS_PER_DECODE_CALL = 4
MAX_READ_BLOCKS = 2000  # manifest rows are small: a few decode calls per block, so stages overlap
READ_WRITE_CPUS = 0.25  # manifest reads and part writes are light; leave the cores to stages


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:
        raise ConfigError(
            "the ray backend needs Ray: pip install 'batchscribe[ray]'") from e
    return ray


class DecodeStage:
    """Manifest rows -> pickled PreparedItem or ItemError, one per row still to do."""

    def __init__(self, config: TranscribeConfig, n_mels: int, done: IdSet) -> None:
        from engine.prepare.stage import Preparer
        from engine.telemetry import turn_off_telemetry

        turn_off_telemetry()  # before the VAD session loads onnxruntime in this Ray worker
        self._prepare = Preparer(config.vad, n_mels)
        self._config = config
        self._done = done

    def __call__(self, batch: pa.Table, base_dir: str) -> pa.Table:
        from engine.io.manifest import rows_to_items

        items = rows_to_items(batch.to_pylist(), base_dir, self._config.run.passthrough,
                              self._done, self._config.run.shard)
        out_ids, payloads = [], []
        for item in items:
            out_ids.append(item.item_id)
            payloads.append(pickle.dumps(self._prepare(item), protocol=5))
        return pa.table({"id": pa.array(out_ids, pa.string()),
                         "prepared": pa.array(payloads, pa.binary())})


class ModelStage:
    """Prepared items -> output rows. Loads the model of the job's plan once per actor."""

    def __init__(self, config: TranscribeConfig, schema: pa.Schema, plan: ModelPlan) -> None:
        from engine.decode.runner import ModelRunner

        self._runner = ModelRunner(config.model, config.decode, plan)
        self._config = config
        self._schema = schema

    def __call__(self, batch: pa.Table) -> pa.Table:
        from engine.decode.stream import decode_stream

        prepared = [pickle.loads(p) for p in batch.column("prepared").to_pylist()]
        rows = [to_row(outcome) for outcome in decode_stream(prepared, self._runner, self._config)]
        return pa.Table.from_pylist(rows, schema=self._schema)


def transcribe_on_ray(config: TranscribeConfig,
                      on_start: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run a job on Ray (`job.run_job` with `RayExecutor`): same output folder, schema, resume,
    checks and metadata as the local backend.

    Raises:
        ConfigError: Ray is not installed, or an option the Ray backend does not support.
        EngineError: a bad manifest, model or output folder (before any work).
    """
    from engine.backends.job import Events, run_job

    return run_job(config, RayExecutor(), Events(on_start=on_start))


class RayExecutor:
    """The job's rows from Ray Data: decode actors, then model actors, written by Ray into a
    staging folder of the output whose whole parts are adopted at the commit."""

    def __init__(self) -> None:
        self._ray: Any = None
        self._staging = ""
        self._before: set[str] = set()
        self._dataset: Any = None

    def open(self, config: TranscribeConfig) -> None:
        if config.run.max_errors is not None:
            raise ConfigError("max_errors is not supported by the ray backend: its tasks write "
                              "their rows independently; leave it unset and read the "
                              "counts in .batchscribe/summary.json")
        self._ray = _import_ray()
        index, count = config.run.shard
        stem = "run" if count == 1 else f"run-shard-{index}-of-{count}"  # a killed run's staging
        self._staging = storage.join(config.output, f".ray-staging-{stem}")

    def settle(self, config: TranscribeConfig) -> None:
        adopt_staged_parts(self._staging, config.output)

    def plan(self, config: TranscribeConfig) -> tuple[TranscribeConfig, ModelPlan]:
        """The plan as a model actor sees it: `plan_model` run as a task with a model actor's
        resources, so the record says what the actors load (device, compute type, encoder)."""
        from engine.decode.plan import plan_model

        ray = self._ray
        if not ray.is_initialized():
            ray.init(address=config.ray.address, log_to_driver=False)
        cluster = ray.cluster_resources()
        config = replace(config, ray=config.ray.sized_for(cluster.get("CPU", 0.0)))  # recorded
        _check_resources(config, cluster)
        task = ray.remote(plan_model).options(num_cpus=config.ray.cpus_per_model_actor,
                                              num_gpus=config.ray.gpus_per_model_actor)
        try:
            plan: ModelPlan = ray.get(task.remote(config.model))
        except ray.exceptions.RayTaskError as e:
            cause = getattr(e, "cause", None)
            if isinstance(cause, EngineError):
                raise cause from None  # a ModelLoadError, as the local backend raises it
            raise
        return config, plan

    def run(self, job: Job, events: Events) -> None:
        config = job.config
        job.started(events)
        self._before = set(part_files(config.output))
        self._dataset = _build_dataset(self._ray, job, job.writer.schema)
        staging_path, staging_fs = ray_location(self._staging)
        self._dataset.write_parquet(staging_path, filesystem=staging_fs,
                                    min_rows_per_file=config.run.rows_per_part,
                                    ray_remote_args={"num_cpus": READ_WRITE_CPUS})

    def commit(self, job: Job) -> None:
        adopt_staged_parts(self._staging, job.config.output)
        job.summary.add_parts(sorted(set(part_files(job.config.output)) - self._before))
        if self._dataset is not None:
            _write_stats(job.writer, job.config, self._dataset)


def _check_resources(config: TranscribeConfig, cluster: dict[str, float]) -> None:
    """Fail now, rather than hang, when the actors would leave Ray Data no CPU or no GPU."""
    options = config.ray
    cpus = cluster.get("CPU", 0.0)
    held = (options.decode_actors * (options.cpus_per_decode_actor or 0.0)
            + options.model_actors * (options.cpus_per_model_actor or 0.0))
    if cpus - held < 1:
        raise ConfigError(
            f"the actors hold {held:g} of the cluster's {cpus:g} CPUs; Ray Data needs one more "
            "to list and read the manifest: lower decode_actors, cpus_per_decode_actor or "
            "cpus_per_model_actor in [ray]")
    gpus = options.model_actors * options.gpus_per_model_actor
    if gpus > cluster.get("GPU", 0.0):
        raise ConfigError(
            f"{options.model_actors} model actors with {options.gpus_per_model_actor:g} GPU "
            f"each need {gpus:g} GPUs; the cluster has {cluster.get('GPU', 0.0):g}")


def _build_dataset(ray: Any, job: Job, schema: pa.Schema) -> Any:
    """read_parquet per manifest folder (relative paths resolve there) -> stages, lazily.

    The manifest is read in many small blocks so that decoding and the model overlap.
    """
    from engine.io.manifest import OVERRIDE_COLUMNS

    config, manifest, n_mels, done = job.config, job.manifest, job.plan.n_mels, job.done
    options = config.ray
    wanted = {"id", "path", "audio", *OVERRIDE_COLUMNS, *config.run.passthrough}
    columns = [c for c in manifest.schema.names if c in wanted]
    folders = [(folder, list(group)) for folder, group in
               groupby(manifest.files, key=storage.parent)]
    blocks = max(1, min(MAX_READ_BLOCKS, manifest.num_rows // (2 * ITEMS_PER_DECODE_CALL))
                 // len(folders))
    datasets = [
        ray.data.read_parquet(ray_paths(group)[0], filesystem=ray_paths(group)[1],
                              partitioning=None, num_cpus=READ_WRITE_CPUS)
        .select_columns(columns).repartition(blocks)
        .map_batches(DecodeStage, fn_constructor_args=(config, n_mels, done),
                     fn_kwargs={"base_dir": folder}, batch_format="pyarrow",
                     batch_size=ITEMS_PER_DECODE_CALL,
                     compute=ray.data.ActorPoolStrategy(size=options.decode_actors),
                     num_cpus=options.cpus_per_decode_actor)
        for folder, group in folders
    ]
    prepared = datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]
    return prepared.map_batches(
        ModelStage, fn_constructor_args=(config, schema, job.plan), batch_format="pyarrow",
        batch_size=options.items_per_model_call,
        compute=ray.data.ActorPoolStrategy(size=options.model_actors),
        num_gpus=options.gpus_per_model_actor, num_cpus=options.cpus_per_model_actor)


def adopt_staged_parts(staging: str, output: str) -> list[str]:
    """Rename the whole Parquet files of a staging folder into output parts; drop the rest.

    A file is whole when its footer reads: Ray writes a file in one go, so a killed writer
    leaves a file without one. Returns the adopted parts.
    """
    if storage.is_uri(staging):  # no rename on object stores: copy, then delete
        return adopt_staged_remote(staging, output)
    if not os.path.isdir(staging):
        return []
    adopted = []
    tag = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    for n, name in enumerate(sorted(os.listdir(staging))):
        path = os.path.join(staging, name)
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError):
            os.remove(path)
            continue
        if rows == 0:
            os.remove(path)
            continue
        target = os.path.join(output, f"{PART_PREFIX}ray-{tag}-{n:05d}.parquet")
        os.replace(path, target)
        adopted.append(target)
    if not os.listdir(staging):
        os.rmdir(staging)
    return adopted


def _write_stats(writer: PartWriter, config: TranscribeConfig, dataset: Any) -> None:
    """Ray's per-stage timings, beside the parts (where the time of a Ray run went); the
    metadata folder keeps Parquet readers off it."""
    try:
        stats = dataset.stats()
    except Exception as e:  # stats are a diagnostic, never a failure
        stats = f"no stats: {e}"
    index, count = config.run.shard
    name = f"{META_DIR}/ray-stats-shard-{index}-of-{count}.txt"
    storage.write_bytes(storage.join(writer.output_dir, name), str(stats).encode("utf-8"))
