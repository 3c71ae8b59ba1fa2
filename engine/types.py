"""Frozen dataclasses passed between the pipeline's stages.

Times are in seconds (`_s`), sample counts in samples; every stage boundary uses these types.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

Status = Literal["ok", "empty", "error"]
ErrorKind = Literal["permanent", "transient"]
FRAMES_PER_S = 100  # log-mel frames per second of audio
WINDOW_FRAMES = 30 * FRAMES_PER_S  # the encoder's input: 30 s of log-mel frames
RESUME_SLACK_S = 0.5  # a packed decode stopping this close to a member's end has finished it
DECODER_TOKENS = 448  # Whisper's decoder context: prompt and generated tokens together
PROMPT_TOKENS = DECODER_TOKENS // 2 - 1  # previous text in a prompt (faster-whisper: 223)


@dataclass(frozen=True, slots=True)
class AudioItem:
    """One manifest row: where its audio is and how to transcribe it."""

    item_id: str
    path: str | None = None  # absolute or manifest-relative path, already resolved
    audio_bytes: bytes | None = None
    language: str | None = None
    task: str | None = None
    prompt: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    passthrough: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        """A human-readable name for error messages."""
        return self.path if self.path is not None else f"<audio bytes of {self.item_id}>"


@dataclass(frozen=True, slots=True)
class SpeechSpan:
    """A stretch of speech in the source file."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class Chunk:
    """At most 30 s of speech (spans glued together) ready for the encoder."""

    item_id: str
    index: int
    spans: tuple[SpeechSpan, ...]  # source spans, in order, that make up this chunk
    # log-mel, [n_mels, 3000] float32 ([n_mels, 0] while `spilled`), or the samples to compute
    # it from on the model's device (the torch encoder on CUDA)
    features: np.ndarray | DeviceMel
    spilled: SpilledFeatures | None = None  # where the features wait on disk (long files)
    # where VAD heard speech, in chunk time (None: VAD off); words must cover it (issue 14)
    voiced: tuple[SpeechSpan, ...] | None = None

    @property
    def duration_s(self) -> float:
        return sum(span.duration_s for span in self.spans)

    def loaded(self) -> Chunk:
        """This chunk with its features in memory (read back from disk when spilled)."""
        if self.spilled is None:
            return self
        data = self.spilled.read()  # log-mel, or (1-D) samples for the device
        return Chunk(self.item_id, self.index, self.spans,
                     data if data.ndim == 2 else DeviceMel.of(data), None, self.voiced)

    def to_source_time(self, chunk_time_s: float) -> float:
        """Map a time inside the chunk back to a time in the source file."""
        elapsed = 0.0
        for span in self.spans:
            if chunk_time_s <= elapsed + span.duration_s:
                return span.start_s + max(0.0, chunk_time_s - elapsed)
            elapsed += span.duration_s
        return self.spans[-1].end_s if self.spans else chunk_time_s

    def tail(self, from_s: float) -> Chunk:
        """The rest of this chunk after chunk time `from_s`, shifted to the window's start."""
        spans: list[SpeechSpan] = []
        elapsed = 0.0
        for span in self.spans:
            cut = max(0.0, from_s - elapsed)
            if cut < span.duration_s:
                spans.append(SpeechSpan(span.start_s + cut, span.end_s))
            elapsed += span.duration_s
        voiced = None if self.voiced is None else tuple(
            SpeechSpan(max(0.0, v.start_s - from_s), v.end_s - from_s)
            for v in self.voiced if v.end_s > from_s)
        return Chunk(self.item_id, self.index, tuple(spans), shift_features(self.features, from_s),
                     None, voiced)


@dataclass(frozen=True, slots=True)
class MelPiece:
    """Audio whose log-mel goes into a window: its first `frames` frames, at frame `position`."""

    samples: np.ndarray  # float32 mono 16 kHz
    position: int = 0
    frames: int = WINDOW_FRAMES


@dataclass(frozen=True, slots=True)
class DeviceMel:
    """A window's log-mel left for the model's device to compute (`engine.decode.device_mel`):
    each piece's own log-mel (as `FeatureComputer` gives it) laid at its position, the rest
    silence, then the whole moved left by `shift_frames` (`shift_features`), zeros after."""

    pieces: tuple[MelPiece, ...]
    shift_frames: int = 0

    @classmethod
    def of(cls, samples: np.ndarray) -> DeviceMel:
        """One chunk's samples, whose log-mel fills the window."""
        return cls((MelPiece(samples),))


class FeatureFile:
    """A temporary file of one item's chunk features, written by a decode worker.

    The process that reads it first (the main process) opens it and removes its name at once,
    so the disk space comes back when the last chunk referring to it is gone, even after a crash.
    Pickles as its path.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def __getstate__(self) -> str:
        return self.path

    def __setstate__(self, path: str) -> None:
        self.path, self._fd = path, None

    def read(self, offset: int, shape: tuple[int, ...]) -> np.ndarray:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            weakref.finalize(self, os.close, self._fd)
            os.unlink(self.path)
        out = np.empty(shape, dtype=np.float32)
        if os.preadv(self._fd, [out.data.cast("B")], offset) != out.nbytes:
            raise OSError(f"{self.path}: spilled features end early")
        return out


@dataclass(frozen=True, slots=True)
class SpilledFeatures:
    """One chunk's features in a `FeatureFile`: float32 of `shape` at byte `offset` (1-D: the
    chunk's samples, for the device's log-mel)."""

    file: FeatureFile
    offset: int
    shape: tuple[int, ...]

    def read(self) -> np.ndarray:
        return self.file.read(self.offset, self.shape)


def shift_features(features: np.ndarray | DeviceMel, from_s: float) -> np.ndarray | DeviceMel:
    """Features moved left by `from_s` seconds (100 frames a second), silence-padded."""
    shift = int(round(from_s * FRAMES_PER_S))
    if isinstance(features, DeviceMel):  # two shifts in a row are one by their sum
        return DeviceMel(features.pieces, features.shift_frames + shift)
    out = np.zeros_like(features)
    out[:, : features.shape[1] - shift] = features[:, shift:]
    return out


@dataclass(frozen=True, slots=True)
class PackedChunk:
    """Whole short chunks of several items laid out in one window, silence between them.

    `origin_s` is the window time where this view starts: 0, or where a decode stopped early
    and the rest of the window is decoded again (see `tail`).
    """

    members: tuple[Chunk, ...]
    offsets_s: tuple[float, ...]  # where each member's speech starts in the window
    features: np.ndarray | DeviceMel
    origin_s: float = 0.0

    @property
    def duration_s(self) -> float:
        return self.offsets_s[-1] + self.members[-1].duration_s - self.origin_s

    def tail(self, from_s: float) -> PackedChunk:
        """The rest of the window after view time `from_s`; from the start of the member whose
        speech `from_s` falls inside, so that no member is decoded from its middle (a decode
        that stopped there has often skipped that member's first words)."""
        stop_s = self.origin_s + from_s
        for member, offset in zip(self.members, self.offsets_s, strict=True):
            if self.origin_s < offset < stop_s < offset + member.duration_s - RESUME_SLACK_S:
                from_s = offset - self.origin_s
        return PackedChunk(self.members, self.offsets_s, shift_features(self.features, from_s),
                           self.origin_s + from_s)


@dataclass(frozen=True, slots=True)
class PreparedItem:
    """An item decoded, VAD-filtered and cut into chunks with features."""

    item: AudioItem
    duration_s: float
    speech_s: float
    chunks: tuple[Chunk, ...]
    language: str | None = None  # set by the language stage when the model detects it
    language_probability: float | None = None
    prepare_s: float = 0.0  # worker time spent decoding, detecting speech, computing features


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the decoder is told before a window: the text before it, its language and task, and
    whether it decodes with timestamp tokens. Turned into tokens in one place only (the model
    adapter's `Vocabulary.tokens`); `previous` holds at most PROMPT_TOKENS text tokens."""

    language: str
    task: str
    previous: tuple[int, ...] = ()  # text tokens before the window (none: no previous text)
    trimmable: int = 0  # of `previous`, how many (oldest first) batching may drop
    timestamps: bool = False  # decode with timestamp tokens

    @classmethod
    def after(cls, language: str, task: str, previous: tuple[int, ...],
              timestamps: bool) -> Prompt:
        """Prompted with the text so far: its newest PROMPT_TOKENS tokens, all trimmable."""
        kept = previous[-PROMPT_TOKENS:] if previous else ()
        return cls(language, task, kept, len(kept), timestamps)

    @classmethod
    def initial(cls, language: str, task: str, text: tuple[int, ...],
                timestamps: bool) -> Prompt:
        """Prompted with an initial prompt's tokens: its first PROMPT_TOKENS, never trimmed."""
        return cls(language, task, text[:PROMPT_TOKENS], 0, timestamps)

    @property
    def sot_position(self) -> tuple[int, bool]:
        """Prompts that one model call can take together (CTranslate2 needs the start of
        transcript at one position): the same length once trimmable tokens are dropped, and
        either all or none with trimmable previous text."""
        before = 1 + len(self.previous) if self.previous else 0
        return before - self.trimmable + (not self.timestamps), self.trimmable > 0

    def trimmed(self, keep: int) -> Prompt:
        """This prompt with only the newest `keep` of its trimmable previous-text tokens."""
        drop = self.trimmable - keep
        if drop <= 0:
            return self
        return replace(self, previous=self.previous[drop:], trimmable=keep)


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    """One window to decode (a chunk, or packed chunks), with its prompt."""

    chunk: Chunk | PackedChunk
    prompt: Prompt
    packable: bool = False  # the item's only chunk, which may share a window with others

    @property
    def language(self) -> str:
        return self.prompt.language

    @property
    def task(self) -> str:
        return self.prompt.task

    def loaded(self) -> ChunkRequest:
        """This request with its chunk's features in memory (`Chunk.loaded`)."""
        if isinstance(self.chunk, Chunk) and self.chunk.spilled is not None:
            return ChunkRequest(self.chunk.loaded(), self.prompt, self.packable)
        return self

    def trimmed(self, keep: int) -> ChunkRequest:
        """This request with only the last `keep` of its trimmable previous-text tokens."""
        prompt = self.prompt.trimmed(keep)
        return self if prompt is self.prompt else replace(self, prompt=prompt)


@dataclass(frozen=True, slots=True)
class Word:
    """One word with its text tokens and times in the decoded view's time (seconds)."""

    text: str  # with its leading space, as the tokenizer writes it
    tokens: tuple[int, ...]
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True, slots=True)
class Decoded:
    """The model's raw answer for one request, with its words once aligned."""

    request: ChunkRequest
    tokens: tuple[int, ...]
    avg_logprob: float
    no_speech_prob: float
    temperature: float
    compression_ratio: float
    # the encoder's output for the request's features [frames, width], kept so that fallback
    # and word alignment need no second encoder pass: a numpy array on the host, or a tensor on
    # the GPU with the torch encoder (engine/decode/torch_encoder.py)
    encoded: Any = field(compare=False, repr=False)
    # word timings of its text (cross-attention alignment), in its view's time; None: not aligned
    words: tuple[Word, ...] | None = None


@dataclass(frozen=True, slots=True)
class TimedWord:
    """One word of the output, in source time."""

    start_s: float
    end_s: float
    word: str
    probability: float


@dataclass(frozen=True, slots=True)
class Segment:
    """One timestamped piece of text, in source time."""

    start_s: float
    end_s: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    words: tuple[TimedWord, ...] | None = None  # when word timestamps are asked for


Route = Literal["alone", "packed", "unpacked"]  # unpacked: packed, then decoded alone


@dataclass(frozen=True, slots=True)
class ChunkResult:
    """The model's output for one chunk, already split into segments in source time."""

    chunk: Chunk
    segments: tuple[Segment, ...]
    route: Route = "alone"
    temperature: float = 0.0  # the highest temperature its decodes needed (fallback)


@dataclass(frozen=True, slots=True)
class ItemResult:
    """A finished item: one output row."""

    item: AudioItem
    status: Status
    text: str
    language: str | None
    language_probability: float | None
    duration_s: float
    speech_s: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class ItemError:
    """An item that failed at some stage: also one output row, with status `error`."""

    item: AudioItem
    stage: str
    error_type: str
    message: str
    # "permanent" (not audio, corrupt, no stream) or "transient" (worker died, I/O, resources,
    # timeouts): a rerun retries transient rows, `--retry-errors` all of them
    kind: ErrorKind = "permanent"


Outcome = ItemResult | ItemError
