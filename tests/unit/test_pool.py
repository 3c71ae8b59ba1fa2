"""The decode pool survives a worker that dies, and keeps results in order."""

import os
from functools import partial

from engine.backends.pool import OrderedPool


def _square_or_die(poison: str, item: str) -> str:
    if item == poison:
        os._exit(1)  # what a segfaulting decoder or the OOM killer does to a worker
    return item * 2


def _make(poison: str):
    return partial(_square_or_die, poison)


def test_results_come_back_in_order_and_a_killer_item_becomes_its_crash_result() -> None:
    items = [f"i{n}" for n in range(12)]
    with OrderedPool(partial(_make, "i5"), workers=2, on_crash=lambda i: f"crashed {i}",
                     window=4) as pool:
        results = list(pool.map(items))
    assert results == [("crashed i5" if i == "i5" else i * 2) for i in items]


def test_inline_mode_runs_in_process() -> None:
    with OrderedPool(partial(_make, "none"), workers=0, on_crash=str) as pool:
        assert list(pool.map(["a", "b"])) == ["aa", "bb"]
