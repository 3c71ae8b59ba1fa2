"""Option groups, one dataclass per concern, validated once when built."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from engine.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
ENCODERS = ("auto", "ctranslate2", "torch")
COMPUTE_TYPES = (
    "auto", "default", "int8", "int8_float32", "int8_float16", "int8_bfloat16",
    "int16", "float16", "bfloat16", "float32",
)
TASKS = ("transcribe", "translate")
TIMESTAMPS = ("auto", "tokens", "aligned", "none")
BACKENDS = ("local", "ray")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} {value!r} is not valid; choose one of: {', '.join(choices)}")


def _check_positive(name: str, value: float, minimum: float = 1) -> None:
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """Which model to load and where.

    Attributes:
        path: A CTranslate2 Whisper model folder, a faster-whisper model name, or None for the
            bundled default (tiny.en).
        device: "auto" picks CUDA when a GPU is visible, else the CPU.
        compute_type: "auto" means int8 on CPU and float16 on CUDA.
        device_index: GPUs to place one model replica set on each.
        replicas: Model replicas per device run concurrently (CTranslate2 `inter_threads`);
            None picks 2 on CPU (1 thread each) and 8 per GPU.
        cpu_threads: Threads per replica on CPU; 0 shares the cores evenly.
        encoder: Which encoder runs: "torch" (PyTorch with flash attention, weights read from
            the same folder, output handed to CTranslate2 on the device; the `gpu` extra),
            "ctranslate2", or "auto": torch on one CUDA device for encoders at least 1024 wide
            (medium and large models; smaller ones are decoder-bound) when PyTorch has CUDA.
        features_on_device: With the torch encoder on CUDA, the decode workers only decode
            audio and run VAD, and the log-mel is computed on the GPU (batched STFT); False
            keeps it in the workers. Ignored otherwise (the run record says where it ran).
    """

    path: str | None = None
    device: str = "auto"
    compute_type: str = "auto"
    device_index: tuple[int, ...] = (0,)
    replicas: int | None = None
    cpu_threads: int = 0
    encoder: str = "auto"
    features_on_device: bool = True

    def __post_init__(self) -> None:
        _check_choice("device", self.device, DEVICES)
        _check_choice("encoder", self.encoder, ENCODERS)
        _check_choice("compute type", self.compute_type, COMPUTE_TYPES)
        if self.replicas is not None:
            _check_positive("replicas", self.replicas)
        _check_positive("cpu threads", self.cpu_threads, 0)
        if not self.device_index:
            raise ConfigError("device_index needs at least one GPU index")


@dataclass(frozen=True)
class DecodeConfig:
    """How the model decodes; defaults are faster-whisper's `transcribe` defaults.

    Attributes:
        language: Language code for every item without its own; None detects it per file.
        task: "transcribe" or "translate" (into English).
        beam_size: 1 is greedy search.
        temperatures: Fallback schedule: a chunk whose text looks wrong (too repetitive or too
            improbable) is decoded again at the next temperature, by sampling.
        initial_prompt: Text given to the model before every chunk (a row's `prompt` wins).
        timestamps: Where segment times come from. "tokens": Whisper's timestamp tokens (as
            faster-whisper's `transcribe`); "aligned": text decoded without timestamp tokens, cut
            into segments by word timings (cross-attention alignment); "none": one segment per
            chunk. "auto" is aligned, or tokens with packing (which splits windows by them).
            Aligned is as fast as tokens on CPU and 3x faster on a GPU, where CTranslate2's
            timestamp rules cost more than the rest of a decoder step (bench/RESULTS.md).
        word_timestamps: Fill the `words` column (word times by cross-attention alignment).
        condition_on_previous_text: Prompt each chunk of a file with the file's text so far
            (faster-whisper's sequential long-form), so a file's chunks are decoded in order,
            in streams of `conditioning.STREAM_CHUNKS` (each starting unprompted); batches
            still gather chunks of many files.
        prompt_reset_on_temperature: With conditioning, a chunk that needed a fallback above
            this temperature is left out of the prompts after it, with everything before it.
        prompt_reset_on_logprob: ...and so is a chunk decoded weakly: an average log-probability
            under this, or a no-speech probability over `no_speech_threshold` (noisy speech,
            whose text would prompt the next chunk into skipping or inventing words).
        max_new_tokens: At most this many tokens generated per window (faster-whisper's
            `max_new_tokens`); None: up to the decoder's context.
    """

    language: str | None = None
    task: str = "transcribe"
    beam_size: int = 5
    best_of: int = 5
    patience: float = 1.0
    length_penalty: float = 1.0
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    log_prob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    initial_prompt: str | None = None
    timestamps: str = "auto"
    word_timestamps: bool = False
    max_initial_timestamp_s: float = 1.0
    suppress_blank: bool = True
    condition_on_previous_text: bool = True
    prompt_reset_on_temperature: float = 0.5
    prompt_reset_on_logprob: float | None = -0.5
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_choice("task", self.task, TASKS)
        _check_choice("timestamps", self.timestamps, TIMESTAMPS)
        _check_positive("beam size", self.beam_size)
        _check_positive("best of", self.best_of)
        if self.max_new_tokens is not None:
            _check_positive("max new tokens", self.max_new_tokens)
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ConfigError("temperatures must be a non-empty list of values >= 0")

    def resolved(self, pack: bool = False) -> DecodeConfig:
        """This config with "auto" timestamps made concrete (tokens when packing)."""
        if self.timestamps != "auto":
            return self
        return replace(self, timestamps="tokens" if pack else "aligned")


@dataclass(frozen=True)
class VadConfig:
    """Silero VAD settings: faster-whisper's `VadOptions` defaults, spans cut at 30 s."""

    enabled: bool = True
    threshold: float = 0.5
    min_speech_duration_ms: int = 0
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400
    rescue: bool = True
    rescue_db: float = 15.0

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ConfigError(f"VAD threshold must be between 0 and 1, got {self.threshold}")


@dataclass(frozen=True)
class BatchConfig:
    """How chunks from many files are grouped into model calls.

    Attributes:
        batch_size: Windows per model call; None picks 4 on CPU (two small batches in flight beat
            one large one there, and beam search memory grows with the batch) and 16 on CUDA.
        sort_window: Chunks gathered before sorting by length and cutting batches.
        pack: Lay short files (speech within one window) side by side in shared 30 s windows.
        pack_gap_s: Silence between packed files.
        pack_fill_s: Most window time packed files (and the gaps between them) may fill; below
            30 s because the model often leaves out a word spoken in a window's last half second.
    """

    batch_size: int | None = None
    sort_window: int = 64
    pack: bool = False
    pack_gap_s: float = 2.0
    pack_fill_s: float = 29.0

    def __post_init__(self) -> None:
        if self.batch_size is not None:
            _check_positive("batch size", self.batch_size)
        _check_positive("sort window", self.sort_window)
        _check_positive("pack gap (s)", self.pack_gap_s, 0.0)
        if not 0.0 < self.pack_fill_s <= 30.0:
            raise ConfigError(f"pack fill must be over 0 and at most 30 s, got {self.pack_fill_s}")

    def for_device(self, device: str) -> BatchConfig:
        """This config with the batch size made concrete for a device."""
        if self.batch_size is not None:
            return self
        size = 4 if device == "cpu" else 16
        return replace(self, batch_size=size, sort_window=max(self.sort_window, size * 4))


def default_workers() -> int:
    """Decode processes: one per two cores, at least one, at most eight."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class RunConfig:
    """Run-wide settings: parallelism, sharding, error budget, output layout.

    Attributes:
        workers: Decode/VAD/feature processes; 0 runs them in the main process.
        shard: (index, count): take only the rows whose id hashes to `index` of `count`.
        max_errors: Stop the run once more items than this have failed; None never stops.
        passthrough: Manifest columns copied to the output unchanged.
        rows_per_part: Rows per output Parquet part (work lost on a crash is at most one part).
        part_seconds: A part is also closed after this many seconds, whatever its size.
        allow_mixed: Write into an output whose rows came from another model or other decoding
            options (recorded in the run's metadata); refused otherwise.
        retry_errors: Retry every error row of the output, not only the transient ones.
    """

    workers: int = field(default_factory=default_workers)
    shard: tuple[int, int] = (0, 1)
    max_errors: int | None = None
    passthrough: tuple[str, ...] = ()
    rows_per_part: int = 1000
    part_seconds: float = 60.0
    allow_mixed: bool = False
    retry_errors: bool = False

    def __post_init__(self) -> None:
        _check_positive("workers", self.workers, 0)
        index, count = self.shard
        if count < 1 or not 0 <= index < count:
            raise ConfigError(f"shard must be I/N with 0 <= I < N, got {index}/{count}")
        if self.max_errors is not None:
            _check_positive("max errors", self.max_errors, 0)
        _check_positive("rows per part", self.rows_per_part)


@dataclass(frozen=True)
class RayConfig:
    """How the Ray backend spreads the pipeline over a cluster.

    Attributes:
        address: The cluster to join ("auto": the one this machine belongs to); None starts a
            local Ray instance.
        model_actors: Model replicas (actors), each loading the model once.
        gpus_per_model_actor: GPUs per model actor; 0 runs the model actors on CPUs.
        cpus_per_model_actor: CPUs per model actor (its CTranslate2 threads on CPU); None shares
            the cluster's CPUs out (see `sized_for`).
        decode_actors: Actors decoding audio, detecting speech and computing features.
        cpus_per_decode_actor: CPUs each decode actor holds; None as for model actors.
        items_per_model_call: Files handed to a model actor at once; their chunks are batched
            together, so larger values fill batches better on many short files.
    """

    address: str | None = None
    model_actors: int = 1
    gpus_per_model_actor: float = 0.0
    cpus_per_model_actor: float | None = None
    decode_actors: int = 1
    cpus_per_decode_actor: float | None = None
    items_per_model_call: int = 32

    def __post_init__(self) -> None:
        _check_positive("model actors", self.model_actors)
        _check_positive("decode actors", self.decode_actors)
        _check_positive("GPUs per model actor", self.gpus_per_model_actor, 0)
        if self.cpus_per_model_actor is not None:
            _check_positive("CPUs per model actor", self.cpus_per_model_actor, 0)
        if self.cpus_per_decode_actor is not None:
            _check_positive("CPUs per decode actor", self.cpus_per_decode_actor, 0)
        _check_positive("items per model call", self.items_per_model_call)

    def sized_for(self, cluster_cpus: float) -> RayConfig:
        """CPU shares left unset made concrete: one CPU per actor where the cluster has one to
        spare beside the one Ray Data reads the manifest with, else an even share of the rest
        (a 2-core machine gives each of the two default actors half a CPU)."""
        fixed = ((self.cpus_per_model_actor or 0.0) * self.model_actors
                 + (self.cpus_per_decode_actor or 0.0) * self.decode_actors)
        unset = (self.model_actors if self.cpus_per_model_actor is None else 0) + \
            (self.decode_actors if self.cpus_per_decode_actor is None else 0)
        share = min(1.0, max(0.0, cluster_cpus - 1 - fixed) / unset) if unset else 0.0
        share = int(share * 100) / 100  # Ray counts CPUs in hundredths at most
        return replace(
            self,
            cpus_per_model_actor=share if self.cpus_per_model_actor is None
            else self.cpus_per_model_actor,
            cpus_per_decode_actor=share if self.cpus_per_decode_actor is None
            else self.cpus_per_decode_actor)


@dataclass(frozen=True)
class TranscribeConfig:
    """Everything one transcription run needs, passed whole."""

    manifest: str
    output: str
    model: ModelConfig = field(default_factory=ModelConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    run: RunConfig = field(default_factory=RunConfig)
    backend: str = "local"
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self) -> None:
        _check_choice("backend", self.backend, BACKENDS)
        if self.batch.pack and self.decode.timestamps in ("aligned", "none"):
            raise ConfigError("packing splits windows by the model's timestamp tokens: use "
                              "--timestamps tokens (or auto), or drop --pack")
        if self.batch.pack and self.decode.word_timestamps:
            raise ConfigError("word timestamps are not available with packing yet: drop "
                              "--word-timestamps or --pack")
        # "auto" made concrete once, here, so that every stage and the run record see the mode
        # as run
        object.__setattr__(self, "decode", self.decode.resolved(self.batch.pack))
