"""Run metadata (`.batchscribe/runs/`, `.batchscribe/summary.json`), the resumed run's counts, and
mixed settings.

Each test runs the real tiny.en model on real clips through the command line.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.io.runlog import RUNS_DIR, SUMMARY_NAME, latest_record
from engine.progress import Progress


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def resumed(write_manifest, tmp_path, clips, model_path):
    """One clip transcribed, then the same output rerun over a manifest of two."""
    out = str(tmp_path / "out")
    first = write_manifest({"id": ["a"], "path": [clips[2]["path"]]}, name="first.parquet")
    both = write_manifest({"id": ["a", "b"], "path": [clips[2]["path"], clips[5]["path"]],
                           "reference": [clips[2]["reference_text"], clips[5]["reference_text"]]},
                          name="both.parquet")
    common = ["-j", "0", "--beam-size", "1", "--model", model_path]
    assert invoke("transcribe", first, "-o", out, *common).exit_code == 0
    result = invoke("transcribe", both, "-o", out, *common)
    assert result.exit_code == 0, result.output
    return out, both, common, result


def test_every_invocation_keeps_its_own_record_and_the_summary_covers_the_folder(
        resumed) -> None:
    out, _, _, _ = resumed
    assert not os.path.exists(os.path.join(out, "run.json"))
    records = sorted(os.listdir(os.path.join(out, RUNS_DIR)))
    assert len(records) == 2 and all(r.endswith("-shard-0-of-1-" + r[-11:]) for r in records)
    first, second = (json.load(open(os.path.join(out, RUNS_DIR, r))) for r in records)
    assert first["rows"] == 1 and first["skipped_already_done"] == 0
    assert second["rows"] == 1 and second["skipped_already_done"] == 1
    assert second["manifest_rows"] == 2
    with open(os.path.join(out, SUMMARY_NAME)) as f:
        summary = json.load(f)
    assert summary["rows"] == 2 and summary["counts"]["ok"] == 2 and summary["runs"] == 2
    assert summary["audio_hours"] == pytest.approx(first["audio_hours"] + second["audio_hours"],
                                                   abs=2e-4)
    assert summary["mixed_settings"] is False and len(summary["models"]) == 1


def test_resumed_run_counts_rows_already_done_in_its_final_line(resumed) -> None:
    *_, result = resumed
    assert "2 rows: 1 already done, 1 transcribed (1 ok, 0 empty, 0 error)" in result.stderr


def test_progress_bar_starts_at_the_rows_already_done() -> None:
    with Progress("bar") as progress:
        progress.start(30, 8)
        assert progress._bar.n == 8 and progress._bar.total == 30


def test_rerun_with_other_decoding_options_is_refused_then_allowed_and_recorded(resumed) -> None:
    out, manifest, common, _ = resumed
    other = [a if a != "1" else "2" for a in common]  # --beam-size 2
    parts = sorted(os.listdir(out))
    refused = invoke("transcribe", manifest, "-o", out, *other)
    assert refused.exit_code == 1
    assert "decode.beam_size 1 -> 2" in refused.output and "--allow-mixed" in refused.output
    assert sorted(os.listdir(out)) == parts and len(os.listdir(os.path.join(out, RUNS_DIR))) == 2
    allowed = invoke("transcribe", manifest, "-o", out, *other, "--allow-mixed")
    assert allowed.exit_code == 0, allowed.output
    assert "warning: rows of" in allowed.stderr and "decode.beam_size 1 -> 2" in allowed.stderr
    assert latest_record(out)["mixed_settings"] == ["decode.beam_size 1 -> 2"]
    with open(os.path.join(out, SUMMARY_NAME)) as f:
        assert json.load(f)["mixed_settings"] is False  # the rerun wrote no row


def test_an_earlier_versions_run_json_moves_under_runs(resumed, clips) -> None:
    out, manifest, common, _ = resumed
    legacy = latest_record(out)
    with open(os.path.join(out, "run.json"), "w") as f:
        json.dump(legacy, f)
    assert invoke("transcribe", manifest, "-o", out, *common).exit_code == 0
    assert not os.path.exists(os.path.join(out, "run.json"))
    assert any("legacy-run.json" in n for n in os.listdir(os.path.join(out, RUNS_DIR)))


def test_rerun_with_another_model_is_refused(resumed, model_path, tmp_path) -> None:
    """Another model is known by its content (config.json and model.bin), not its path."""
    out, manifest, common, _ = resumed
    other = tmp_path / "other-model"
    other.mkdir()
    for name in os.listdir(model_path):
        if name != "config.json":
            os.symlink(os.path.join(model_path, name), other / name)
    with open(os.path.join(model_path, "config.json"), encoding="utf-8") as f:
        (other / "config.json").write_text(f.read() + "\n")  # same weights, other content hash
    args = [a if a != model_path else str(other) for a in common]
    refused = invoke("transcribe", manifest, "-o", out, *args)
    assert refused.exit_code == 1
    assert "model_sha256_16" in refused.output and "--allow-mixed" in refused.output
    same_content = tmp_path / "same-model"
    os.symlink(model_path, same_content)  # the same model under another path
    moved = [a if a != model_path else str(same_content) for a in common]
    assert invoke("transcribe", manifest, "-o", out, *moved).exit_code == 0
