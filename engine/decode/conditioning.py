"""Sequential long-form decoding in batched mode (`condition_on_previous_text`, issue 14).

Each file's chunk k+1 is prompted with the text of its chunks before it (the last PROMPT_TOKENS
tokens, as faster-whisper's `transcribe` prompts each window), so a file's chunks are decoded in
order: chunk k+1 is asked for only once chunk k's result is back, while the batches fill with
other files' chunks. A long file is decoded as several such streams at once, each of
STREAM_CHUNKS chunks (about 5 min of speech) and each beginning unprompted, so that a job of a
few long recordings still fills the GPU's batches (one 44-min file would otherwise be a chain of
about 100 decodes, one after the other). A chunk decoded only after a fallback above
`prompt_reset_on_temperature` drops its own text and what came before it from the prompts that
follow (faster-whisper's `prompt_reset_on_temperature`), so a hallucination cannot feed itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.types import ChunkRequest, ChunkResult, PreparedItem

if TYPE_CHECKING:
    from engine.decode.runner import ModelRunner

PROMPT_TOKENS = 223  # faster-whisper: the last max_length // 2 - 1 tokens of the previous text
STREAM_CHUNKS = 10  # chunks decoded one after the other; a longer file runs several streams


@dataclass
class _File:
    prepared: PreparedItem
    language: str
    task: str
    prompt: list[int]  # the file's own prompt (`initial_prompt`) as tokens: each stream's start
    previous: dict[int, list[int]] = field(default_factory=dict)  # stream -> its prompt so far
    waiting: int = 0  # streams not finished


class PreviousText:
    """Hands out each file's chunks one at a time, each prompted with the file's text so far."""

    def __init__(self, runner: ModelRunner, reset_above: float) -> None:
        self._runner = runner
        self._reset_above = reset_above
        self._files: dict[str, _File] = {}

    def __len__(self) -> int:
        return len(self._files)

    def first(self, prepared: PreparedItem, language: str, task: str,
              prompt: str | None) -> list[ChunkRequest]:
        """The requests for the first chunk of each of a file's streams; the later chunks wait
        for `follow`."""
        chunks = prepared.chunks
        starts = range(0, len(chunks), STREAM_CHUNKS)
        if len(chunks) > 1:
            file = _File(prepared, language, task, self._encode(language, task, prompt))
            file.previous = {start: list(file.prompt) for start in starts}
            file.waiting = sum(min(STREAM_CHUNKS, len(chunks) - start) > 1 for start in starts)
            if file.waiting:
                self._files[prepared.item.item_id] = file
        return [self._runner.request(chunks[start], language, task, prompt) for start in starts]

    def follow(self, result: ChunkResult) -> ChunkRequest | None:
        """The request for the chunk after `result`'s in its stream, prompted with the stream's
        text so far; None when `result` held the stream's last chunk."""
        file = self._files.get(result.chunk.item_id)
        index = result.chunk.index
        next_index = index + 1
        if file is None or next_index % STREAM_CHUNKS == 0 \
                or next_index == len(file.prepared.chunks):
            return None
        stream = index - index % STREAM_CHUNKS
        previous = file.previous[stream]
        if result.temperature > self._reset_above:
            previous = []  # this chunk's text and all before it (the initial prompt too)
        else:
            text = " ".join(s.text for s in result.segments)
            previous = (previous + self._encode(file.language, file.task, text))[-PROMPT_TOKENS:]
        file.previous[stream] = previous
        if (next_index + 1) % STREAM_CHUNKS == 0 or next_index + 1 == len(file.prepared.chunks):
            file.waiting -= 1  # the stream's last chunk is asked for
            if not file.waiting:
                del self._files[result.chunk.item_id]
        return self._runner.request(file.prepared.chunks[next_index], file.language, file.task,
                                    None, previous=tuple(previous))

    def _encode(self, language: str, task: str, text: str | None) -> list[int]:
        if not text:
            return []
        tokenizer = self._runner.tokenizer(language, task)
        return list(tokenizer.encode(" " + text.strip()))
