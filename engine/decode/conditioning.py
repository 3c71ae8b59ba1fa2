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

from dataclasses import dataclass

from engine.config import DecodeConfig
from engine.decode.vocabulary import Vocabulary
from engine.types import PROMPT_TOKENS, ChunkRequest, ChunkResult, PreparedItem, Prompt

STREAM_CHUNKS = 10  # chunks decoded one after the other; a longer file runs several streams


@dataclass
class _File:
    prepared: PreparedItem
    language: str
    task: str
    previous: dict[int, list[int]]  # first chunk of a stream -> the stream's prompt so far
    waiting: int  # streams whose last chunk is not asked for yet


class PreviousText:
    """Hands out each file's chunks one at a time, each prompted with the file's text so far."""

    def __init__(self, vocabulary: Vocabulary, decode: DecodeConfig) -> None:
        self._vocabulary = vocabulary
        self._decode = decode
        self._timestamps = decode.timestamps == "tokens"
        self._files: dict[str, _File] = {}

    def first(self, prepared: PreparedItem, language: str, task: str,
              prompt: str | None) -> list[ChunkRequest]:
        """The requests for the first chunk of each of a file's streams; the later chunks wait
        for `follow`."""
        chunks = prepared.chunks
        starts = range(0, len(chunks), STREAM_CHUNKS)
        longer = [start for start in starts if not _ends_stream(start, len(chunks))]
        if longer:  # streams of one chunk wait for nothing
            initial = self._encode(prompt)
            self._files[prepared.item.item_id] = _File(
                prepared, language, task, {start: list(initial) for start in longer}, len(longer))
        first = self._vocabulary.initial_prompt(language, task, prompt, self._timestamps)
        return [ChunkRequest(chunks[start], first) for start in starts]

    def follow(self, result: ChunkResult) -> ChunkRequest | None:
        """The request for the chunk after `result`'s in its stream, prompted with the stream's
        text so far; None when `result` held the stream's last chunk."""
        file = self._files.get(result.chunk.item_id)
        index = result.chunk.index
        if file is None or _ends_stream(index, len(file.prepared.chunks)):
            return None
        next_index = index + 1
        stream = index - index % STREAM_CHUNKS
        previous = file.previous[stream]
        if self._resets(result):
            previous = []  # this chunk's text and all before it (the initial prompt too)
        else:
            text = " ".join(s.text for s in result.segments)
            previous = (previous + self._encode(text))[-PROMPT_TOKENS:]
        file.previous[stream] = previous
        if _ends_stream(next_index, len(file.prepared.chunks)):
            file.waiting -= 1  # the stream's last chunk is asked for
            if not file.waiting:
                del self._files[result.chunk.item_id]
        return ChunkRequest(file.prepared.chunks[next_index], Prompt.after(
            file.language, file.task, tuple(previous), self._timestamps))

    def _resets(self, result: ChunkResult) -> bool:
        """Whether `result`'s chunk drops the prompt: it needed a fallback above
        `prompt_reset_on_temperature`, or its decode was weak (an average log-probability under
        `prompt_reset_on_logprob`, or a no-speech probability over `no_speech_threshold`)."""
        config = self._decode
        if result.temperature > config.prompt_reset_on_temperature:
            return True
        lowest = config.prompt_reset_on_logprob
        most_silent = config.no_speech_threshold
        return any((lowest is not None and s.avg_logprob < lowest)
                   or (most_silent is not None and s.no_speech_prob > most_silent)
                   for s in result.segments)

    def _encode(self, text: str | None) -> list[int]:
        return list(self._vocabulary.encode(text)) if text else []


def _ends_stream(index: int, chunks: int) -> bool:
    """Whether chunk `index` of a file of `chunks` chunks is the last of its stream."""
    return (index + 1) % STREAM_CHUNKS == 0 or index + 1 == chunks
