"""Pack chunks from many files into model batches, sorted by length.

Chunks are gathered in a window, sorted by speech length (so the decoder's sequences in one batch
end at similar times) and cut into batches; while a model replica has nothing to do, a full batch
is cut at once instead of waiting for the window to fill (a file's next chunk under
`condition_on_previous_text` is only asked for once its previous chunk is back). CTranslate2
needs the start-of-transcript token at the same position in every prompt of a batch, so chunks
are grouped by prompt length first (`Prompt.sot_position`); previous-text prompts are sorted by
their length and trimmed to the shortest of their batch. With packing on, the short files in the
window are first laid into shared windows (`packing`).
"""

from __future__ import annotations

from collections import defaultdict

from engine.config import BatchConfig
from engine.decode.packing import pack
from engine.types import ChunkRequest


def _same_prompt_length(batch: list[ChunkRequest]) -> list[ChunkRequest]:
    keep = min(request.prompt.trimmable for request in batch)
    return [request.trimmed(keep) for request in batch]


def same_start_groups(requests: list[ChunkRequest]) -> list[list[tuple[int, ChunkRequest]]]:
    """Requests split into groups that one model call can take (`Prompt.sot_position`), each
    request with its index in `requests`; previous-text prompts trimmed to the shortest of
    their group."""
    groups: dict[tuple[int, bool], list[int]] = defaultdict(list)
    for i, request in enumerate(requests):
        groups[request.prompt.sot_position].append(i)
    return [list(zip(group, _same_prompt_length([requests[i] for i in group]), strict=True))
            for group in groups.values()]


class Batcher:
    """Collects chunk requests and hands out batches."""

    def __init__(self, config: BatchConfig) -> None:
        if config.batch_size is None:
            raise ValueError("Batcher needs a concrete batch size: use BatchConfig.for_device")
        self._size = config.batch_size
        self._window = max(config.sort_window, config.batch_size)
        self._config = config
        self._waiting: list[ChunkRequest] = []

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, requests: list[ChunkRequest], idle: int = 0) -> list[list[ChunkRequest]]:
        """Queue requests; return the batches that are ready: every full batch when the window is
        full, else at most `idle` full batches (the model replicas with nothing to do)."""
        self._waiting.extend(requests)
        if len(self._waiting) >= self._window:
            return self._cut(keep_partial=True)
        if idle > 0 and len(self._waiting) >= self._size and not self._config.pack:
            return self._cut(keep_partial=True, most=idle)
        return []

    def flush(self) -> list[list[ChunkRequest]]:
        """Every waiting request, in batches (the last ones may be short)."""
        return self._cut(keep_partial=False)

    def _cut(self, keep_partial: bool, most: int | None = None) -> list[list[ChunkRequest]]:
        """Batches of the waiting requests (full ones only with `keep_partial`), `most` at most;
        the rest keep waiting."""
        waiting = self._waiting
        if self._config.pack:
            waiting = pack(waiting, self._config.pack_gap_s, self._config.pack_fill_s)
        groups: dict[tuple[int, bool], list[ChunkRequest]] = defaultdict(list)
        for request in waiting:
            groups[request.prompt.sot_position].append(request)
        size = self._size
        batches, left = [], []
        for group in groups.values():  # the longest prompts, then the longest chunks, first
            group.sort(key=lambda r: (r.prompt.trimmable, r.chunk.duration_s), reverse=True)
            full = len(group) - len(group) % size if keep_partial else len(group)
            batches += [group[i: i + size] for i in range(0, full, size)]
            left += group[full:]
        if most is not None:
            left += [request for batch in batches[most:] for request in batch]
            batches = batches[:most]
        self._waiting = left
        return [_same_prompt_length(batch) for batch in batches]
