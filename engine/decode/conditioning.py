"""Sequential long-form decoding in batched mode (`condition_on_previous_text`, issue 14).

Each file's chunk k+1 is prompted with the text of its chunks 0..k (the last PROMPT_TOKENS
tokens, as faster-whisper's `transcribe` prompts each window), so a file's chunks are decoded in
order: chunk k+1 is asked for only once chunk k's result is back, while the batches fill with
other files' chunks. A chunk decoded only after a fallback above `prompt_reset_on_temperature`
drops what came before it from the prompts that follow (faster-whisper's
`prompt_reset_on_temperature`), so a hallucination cannot feed itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.types import ChunkRequest, ChunkResult, PreparedItem

if TYPE_CHECKING:
    from engine.decode.runner import ModelRunner

PROMPT_TOKENS = 223  # faster-whisper: the last max_length // 2 - 1 tokens of the previous text


@dataclass
class _File:
    prepared: PreparedItem
    language: str
    task: str
    next_index: int = 1
    previous: list[int] = field(default_factory=list)  # tokens that prompt the next chunk


class PreviousText:
    """Hands out each file's chunks one at a time, each prompted with the file's text so far."""

    def __init__(self, runner: ModelRunner, reset_above: float) -> None:
        self._runner = runner
        self._reset_above = reset_above
        self._files: dict[str, _File] = {}

    def __len__(self) -> int:
        return len(self._files)

    def first(self, prepared: PreparedItem, language: str, task: str,
              prompt: str | None) -> ChunkRequest:
        """The request for a file's first chunk; the file's later chunks wait for `follow`."""
        first = prepared.chunks[0]
        if len(prepared.chunks) > 1:
            file = _File(prepared, language, task)
            if prompt:
                file.previous = self._encode(file, prompt)
            self._files[prepared.item.item_id] = file
        return self._runner.request(first, language, task, prompt)

    def follow(self, result: ChunkResult) -> ChunkRequest | None:
        """The request for the chunk after `result`'s, prompted with the text so far; None when
        `result` held the file's last chunk."""
        file = self._files.get(result.chunk.item_id)
        if file is None:
            return None
        if result.temperature > self._reset_above:
            file.previous = []
        text = " ".join(s.text for s in result.segments)
        if text:
            file.previous = (file.previous + self._encode(file, text))[-PROMPT_TOKENS:]
        chunk = file.prepared.chunks[file.next_index]
        file.next_index += 1
        if file.next_index == len(file.prepared.chunks):
            del self._files[result.chunk.item_id]
        return self._runner.request(chunk, file.language, file.task, None,
                                    previous=tuple(file.previous))

    def _encode(self, file: _File, text: str) -> list[int]:
        tokenizer = self._runner.tokenizer(file.language, file.task)
        return list(tokenizer.encode(" " + text.strip()))
