"""Long files read in windows, their chunk features spilled to disk by a real decode worker: the
rows equal those of the whole-file path (real clips, the real tiny.en model)."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pytest
import soundfile

from engine import BatchConfig, DecodeConfig, ModelConfig, TranscribeConfig
from engine.backends.local import worker_crashed
from engine.backends.pool import OrderedPool
from engine.config import VadConfig
from engine.decode.runner import ModelRunner
from engine.decode.stream import decode_stream
from engine.prepare.audio import decode
from engine.prepare.stage import Preparer
from engine.prepare.windows import WINDOW_SAMPLES
from engine.types import AudioItem, ItemResult


def long_recording(clips: list[dict[str, str]], path: str, seconds: float) -> str:
    """The real clips in turn with 25 s pauses (mostly silence: VAD keeps the model's work
    small), looped to `seconds`, as 16 kHz FLAC."""
    pause = np.zeros(25 * 16000, dtype=np.float32)
    pieces = [part for c in clips for part in (decode(AudioItem(c["id"], path=c["path"])), pause)]
    one_pass = np.concatenate(pieces)
    loops = int(np.ceil(seconds * 16000 / one_pass.size))
    soundfile.write(path, np.tile(one_pass, loops)[: int(seconds * 16000)], 16000)
    return path


def rows(items: list[AudioItem], model_path: str, preparer: partial[Preparer],
         workers: int) -> list[ItemResult]:
    config = TranscribeConfig(manifest="unused", output="unused",
                              model=ModelConfig(path=model_path, device="cpu"),
                              batch=BatchConfig(batch_size=4), decode=DecodeConfig())
    runner = ModelRunner(config.model, config.decode)
    try:
        with OrderedPool(preparer, workers, on_crash=worker_crashed) as pool:
            out = list(decode_stream(pool.map(items), runner, config))
    finally:
        runner.close()
    assert all(isinstance(r, ItemResult) for r in out), out
    # by id: with conditioning, the short region's rows come back before the long file's
    return sorted((r for r in out if isinstance(r, ItemResult)), key=lambda r: r.item.item_id)


def test_streamed_long_file_rows_equal_whole_file_rows(clips, model_path, tmp_path) -> None:
    path = long_recording(clips, str(tmp_path / "long.flac"), 1.1 * WINDOW_SAMPLES / 16000)
    items = [AudioItem("long", path=path), AudioItem("region", path=path, start_s=200.0,
                                                     end_s=340.0)]
    spill = tmp_path / "spill"
    spill.mkdir()
    streamed = rows(items, model_path, partial(Preparer, VadConfig(), 80, str(spill), 60.0), 1)
    whole = rows(items, model_path, partial(Preparer, VadConfig(), 80, None, None), 0)
    assert [r.item.item_id for r in streamed] == ["long", "region"]
    assert streamed == whole
    assert len(streamed[0].segments) > 10 and streamed[0].speech_s < streamed[0].duration_s / 2
    assert streamed[0].duration_s == pytest.approx(1.1 * WINDOW_SAMPLES / 16000)
    assert os.listdir(spill) == []  # each spill file was removed once the model read it
