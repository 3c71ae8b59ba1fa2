"""The decode pool survives a worker that dies, and keeps results in order."""

import os
from functools import partial

import pytest

from engine.backends import pool as pool_module
from engine.backends.pool import OrderedPool, WorkersFailed


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


def _die_on(poisons: tuple[str, ...], item: str) -> str:
    if item in poisons:
        os._exit(1)
    return item * 2


def _make_many(poisons: tuple[str, ...]):
    return partial(_die_on, poisons)


def test_five_killer_files_in_a_row_stop_the_run_but_four_do_not(monkeypatch) -> None:
    """Issue 16 item 2: workers that keep dying whatever they run are the machinery's failure
    (WorkersFailed: one line, no error rows), not five more error rows; a good file between
    killers starts the count again."""
    monkeypatch.setattr(pool_module, "BACKOFF_S", 0.0)
    killers = tuple(f"k{n}" for n in range(9))
    items = ["a", *killers[:4], "b", *killers[4:]]
    results: list[str] = []
    with pytest.raises(WorkersFailed, match="died on 5 files in a row, each tried 3 times"), \
            OrderedPool(partial(_make_many, killers), workers=1,
                        on_crash=lambda i: f"crashed {i}", window=1) as pool:
        results.extend(pool.map(items))
    assert results == ["aa", *(f"crashed {k}" for k in killers[:4]), "bb",
                       *(f"crashed {k}" for k in killers[4:8])]
