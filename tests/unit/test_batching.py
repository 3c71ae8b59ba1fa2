import numpy as np

from engine.config import BatchConfig
from engine.decode.batching import Batcher
from engine.types import Chunk, ChunkRequest, Prompt, SpeechSpan


def request(item: str, seconds: float, prompt_len: int = 0) -> ChunkRequest:
    """A chunk prompted with an initial prompt of `prompt_len` tokens."""
    chunk = Chunk(item, 0, (SpeechSpan(0, seconds),), np.zeros((1, 1), np.float32))
    return ChunkRequest(chunk, Prompt.initial("en", "transcribe", tuple(range(prompt_len)), False))


def test_batches_mix_files_and_sort_by_length() -> None:
    batcher = Batcher(BatchConfig(batch_size=2, sort_window=4))
    assert batcher.add([request("a", 3), request("b", 10)]) == []
    batches = batcher.add([request("c", 1), request("d", 7)])
    assert [[r.chunk.item_id for r in b] for b in batches] == [["b", "d"], ["a", "c"]]
    assert len(batcher) == 0


def test_prompts_of_different_lengths_never_share_a_batch() -> None:
    batcher = Batcher(BatchConfig(batch_size=4, sort_window=100))
    batcher.add([request("a", 1, 1), request("b", 2, 5), request("c", 3, 1)])
    batches = batcher.flush()
    assert sorted(sorted(r.chunk.item_id for r in b) for b in batches) == [["a", "c"], ["b"]]


def test_partial_batches_wait_for_more_until_flush() -> None:
    batcher = Batcher(BatchConfig(batch_size=4, sort_window=4))
    batches = batcher.add([request(str(i), i) for i in range(6)])
    assert [len(b) for b in batches] == [4]
    assert len(batcher) == 2
    assert [len(b) for b in batcher.flush()] == [2]


def test_a_full_batch_goes_at_once_while_a_replica_is_idle() -> None:
    batcher = Batcher(BatchConfig(batch_size=2, sort_window=64))
    assert batcher.add([request("a", 3), request("b", 10), request("c", 5)]) == []
    batches = batcher.add([request("d", 7)], idle=1)
    assert [[r.chunk.item_id for r in b] for b in batches] == [["b", "d"]]
    assert len(batcher) == 2
    assert batcher.add([], idle=0) == []  # busy again: the rest wait for the window


def test_previous_text_prompts_of_similar_length_share_a_batch() -> None:
    """Trimming to the batch's shortest prompt costs the others their context: long prompts go
    together."""
    def prompted(item: str, previous: int) -> ChunkRequest:
        prompt = Prompt.after("en", "transcribe", tuple(range(previous)), False)
        return ChunkRequest(request(item, 20).chunk, prompt)

    batcher = Batcher(BatchConfig(batch_size=2, sort_window=4))
    batches = batcher.add([prompted("a", 200), prompted("b", 10), prompted("c", 223),
                           prompted("d", 12)])
    assert [[len(r.prompt.previous) for r in b] for b in batches] == [[200, 200], [10, 10]]
