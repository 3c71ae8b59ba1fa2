"""Issue 14 units: where an aligned chunk's left-out speech begins, and previous-text prompts
trimmed to one length per batch."""

from __future__ import annotations

import numpy as np

from engine.config import BatchConfig
from engine.decode.batching import Batcher, same_start_groups
from engine.decode.continuation import unspoken_tail_s
from engine.decode.words import Word
from engine.types import Chunk, ChunkRequest, Prompt, SpeechSpan


def word(start_s: float, end_s: float) -> Word:
    return Word(" w", (1,), start_s, end_s, 0.9)


def test_unspoken_tail_starts_at_the_last_word_when_enough_chunk_follows() -> None:
    assert unspoken_tail_s([word(0.5, 1.0), word(1.2, 20.0)], 29.0, 1.0) == 20.0
    assert unspoken_tail_s([word(0.5, 1.0), word(1.2, 28.5)], 29.0, 1.0) is None
    assert unspoken_tail_s([], 29.0, 1.0) is None


def request(item: str, seconds: float, previous: int) -> ChunkRequest:
    chunk = Chunk(item, 1, (SpeechSpan(0.0, seconds),), np.zeros((80, 3000), np.float32))
    prompt = Prompt.after("en", "transcribe", tuple(range(100, 100 + previous)), False)
    return ChunkRequest(chunk, prompt)


def test_previous_text_prompts_of_one_batch_are_trimmed_to_the_shortest() -> None:
    batcher = Batcher(BatchConfig(batch_size=3, sort_window=3))
    batches = batcher.add([request("a", 20, 5), request("b", 25, 3), request("c", 28, 200)])
    assert len(batches) == 1 and len({len(r.prompt.previous) for r in batches[0]}) == 1
    by_item = {r.chunk.item_id: r.prompt.previous for r in batches[0]}
    assert by_item["a"] == (102, 103, 104)  # the newest 3 kept
    assert by_item["c"] == (297, 298, 299)


def test_prompts_without_previous_text_are_never_trimmed_or_mixed_with_them() -> None:
    batcher = Batcher(BatchConfig(batch_size=2, sort_window=2))
    batches = batcher.add([request("a", 20, 0), request("b", 25, 4)]) + batcher.flush()
    assert sorted(len(b) for b in batches) == [1, 1]
    assert {r.prompt.previous for b in batches for r in b} == {(), (100, 101, 102, 103)}


def test_continuations_are_grouped_by_where_their_prompts_start() -> None:
    """Continuations are prompted with the text before them, each of its own length: one model
    call per group whose start-of-transcript tokens line up."""
    groups = same_start_groups([request("a", 20, 5), request("b", 25, 0), request("c", 9, 2)])
    assert sorted(len(g) for g in groups) == [1, 2]
    prompted = next(g for g in groups if len(g) == 2)
    assert {len(r.prompt.previous) for _, r in prompted} == {2}  # trimmed to the shortest
    assert [i for i, _ in prompted] == [0, 2]  # each with its place in the requests
