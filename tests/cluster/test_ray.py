"""The Ray backend on a local Ray instance (2 CPUs), real clips, the real tiny.en model."""

from __future__ import annotations

import logging
import os
import shutil

import pyarrow.parquet as pq
import pytest

from engine import TranscribeConfig, transcribe
from engine.corpus.evaluate import corpus_wer
from engine.io.runlog import latest_record
from engine.options import build_config

ray = pytest.importorskip("ray", reason="pip install 'batchscribe[ray]'")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def job(manifest: str, output: str, model_path: str, backend: str) -> TranscribeConfig:
    return build_config(manifest, output, {
        "": {"backend": backend},
        "model": {"path": model_path, "device": "cpu"},
        "decode": {"beam_size": 1},
        "run": {"workers": 0, "passthrough": ("reference",)},
        "ray": {"cpus_per_model_actor": 0.5, "cpus_per_decode_actor": 0.5},
    })


@pytest.fixture(scope="module")
def manifest(clips, broken_files_module, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("ray") / "m.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({
        "id": [c["id"] for c in clips] + ["truncated"],
        "path": [c["path"] for c in clips] + [broken_files_module],
        "reference": [c["reference_text"] for c in clips] + [""],
    }), path)
    return path


@pytest.fixture(scope="module")
def broken_files_module(tmp_path_factory) -> str:
    source = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data",
                          "speechbrain_spk1_snt1.wav")
    truncated = tmp_path_factory.mktemp("broken") / "truncated.wav"
    truncated.write_bytes(open(source, "rb").read()[:2000])
    return str(truncated)


@pytest.fixture(scope="module")
def both_runs(read_rows, local_ray, manifest, model_path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("outs")
    local = transcribe(job(manifest, str(folder / "local"), model_path, "local"))
    on_ray = transcribe(job(manifest, str(folder / "ray"), model_path, "ray"))
    return (read_rows(str(folder / "local")), local), (read_rows(str(folder / "ray")), on_ray), \
        folder


def same_words(a: str, b: str) -> bool:
    return corpus_wer([a], [b]).wer == 0.0


def test_ray_gives_the_ids_and_texts_of_the_local_backend(both_runs, clips) -> None:
    (local_rows, local), (ray_rows, on_ray), _ = both_runs
    assert set(ray_rows) == set(local_rows) == {c["id"] for c in clips} | {"truncated"}
    for item_id, row in local_rows.items():
        assert ray_rows[item_id]["status"] == row["status"]
        # batches hold other neighbours on Ray: the same words (a near-tie full stop may come and
        # go, and with it the aligned end of the last word), times within 0.25 s, scores within
        # int8 noise
        if row["text"] is not None:
            assert same_words(ray_rows[item_id]["text"], row["text"]), item_id
        for ours, theirs in zip(ray_rows[item_id]["segments"] or [], row["segments"] or [],
                                strict=True):
            assert same_words(ours["text"], theirs["text"])
            assert ours["start_s"] == pytest.approx(theirs["start_s"], abs=0.25)
            assert ours["end_s"] == pytest.approx(theirs["end_s"], abs=0.25)
            assert ours["avg_logprob"] == pytest.approx(theirs["avg_logprob"], abs=0.05)
        assert ray_rows[item_id]["reference"] == row["reference"]
    assert on_ray["counts"] == local["counts"] == {"ok": len(clips), "empty": 0, "error": 1}
    assert on_ray["backend"] == "ray" and on_ray["audio_hours"] == local["audio_hours"]
    assert on_ray["options"]["decode"]["timestamps"] == local["options"]["decode"]["timestamps"]
    assert latest_record(os.path.join(both_runs[2], "ray"))["backend"] == "ray"


def test_ray_records_the_model_and_summary_as_local_does(both_runs) -> None:
    """Issue 25 item 3: Ray's record left device and compute type "auto" and had no encoder;
    its summary was counted by a copy of other code."""
    (_, local), (_, on_ray), folder = both_runs
    assert on_ray["model"] == local["model"]
    assert on_ray["model"]["device"] == "cpu" and on_ray["model"]["compute_type"] == "int8"
    assert on_ray["model"]["encoder"] == "ctranslate2" and on_ray["model"]["n_mels"] == 80
    for key in ("counts", "rows", "audio_hours", "speech_hours", "little_speech_rows",
                "manifest_rows", "skipped_already_done"):
        assert on_ray[key] == local[key], key
    assert latest_record(str(folder / "ray"))["model"] == local["model"]


def test_a_corrupt_file_is_an_error_row(both_runs) -> None:
    (_, _), (ray_rows, _), _ = both_runs
    row = ray_rows["truncated"]
    assert row["status"] == "error" and "truncated" in row["error"] and row["text"] is None


def test_rerun_after_a_complete_run_does_no_work(both_runs, manifest,
                                                 model_path, read_rows) -> None:
    (_, _), (before, _), folder = both_runs
    report = transcribe(job(manifest, str(folder / "ray"), model_path, "ray"))
    assert report["rows"] == 0 and report["skipped_already_done"] == len(before)
    assert read_rows(str(folder / "ray")) == before


def test_whole_parts_of_a_killed_run_are_adopted_and_half_ones_dropped(
        both_runs, manifest, model_path, tmp_path, read_rows) -> None:
    """A killed Ray run leaves its staging folder: whole files count, torn ones are redone."""
    (_, _), (ray_rows, _), folder = both_runs
    out = tmp_path / "resumed"
    staging = out / ".ray-staging-run"
    staging.mkdir(parents=True)
    first_part = sorted(p for p in os.listdir(folder / "ray") if p.startswith("part-"))[0]
    table = pq.read_table(folder / "ray" / first_part)
    kept = table.slice(0, 3)
    pq.write_table(kept, staging / "whole.parquet")
    (staging / "torn.parquet").write_bytes(open(staging / "whole.parquet", "rb").read()[:300])
    report = transcribe(job(manifest, str(out), model_path, "ray"))
    assert report["skipped_already_done"] == 3 and report["rows"] == len(ray_rows) - 3
    resumed = read_rows(str(out))
    assert set(resumed) == set(ray_rows)
    assert not staging.exists()


def test_without_a_spare_cpu_the_run_fails_instead_of_hanging(local_ray, manifest, model_path,
                                                              tmp_path) -> None:
    from engine.errors import ConfigError

    config = build_config(manifest, str(tmp_path / "out"), {
        "": {"backend": "ray"}, "model": {"path": model_path},
        "ray": {"cpus_per_model_actor": 1, "cpus_per_decode_actor": 1}})
    with pytest.raises(ConfigError, match="Ray Data needs one more"):
        transcribe(config)
    shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_backend_ray_with_no_ray_table_runs_on_two_cpus(local_ray, clips, model_path, tmp_path,
                                                         read_rows) -> None:
    """Actors are sized from the CPUs Ray reports (2 here), not from fixed defaults of 3."""
    import pyarrow as pa

    short = [c for c in clips if float(c["duration_s"]) < 4][:2]
    manifest = str(tmp_path / "m.parquet")
    pq.write_table(pa.table({"id": [c["id"] for c in short],
                             "path": [c["path"] for c in short]}), manifest)
    config = build_config(manifest, str(tmp_path / "out"), {
        "": {"backend": "ray"}, "model": {"path": model_path}, "decode": {"beam_size": 1}})
    warnings: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: warnings.append(record.getMessage())  # type: ignore[method-assign]
    # where Ray Data warns about deprecated arguments (its own logging setup replaces the
    # handlers of "ray.data" itself when a dataset is built)
    ray_util = logging.getLogger("ray.data._internal.util")
    ray_util.addHandler(handler)
    try:
        report = transcribe(config)
    finally:
        ray_util.removeHandler(handler)
    assert not [w for w in warnings if "deprecated" in w], warnings  # issue 28: `concurrency`
    assert report["counts"]["ok"] == 2
    assert report["options"]["ray"]["cpus_per_model_actor"] == 0.5
    assert set(read_rows(str(tmp_path / "out"))) == {c["id"] for c in short}
