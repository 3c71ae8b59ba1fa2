"""Day-one mistakes: each is one line naming the item and the fix, exit 1, nothing written."""

from __future__ import annotations

import os
import re
import sys

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from engine.cli import cli

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    # progress lines ("batchscribe: loading the model ...") go to a log beside the error
    lines = [line for line in result.output.strip().splitlines()
             if not line.startswith("batchscribe: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_unknown_passthrough_column_names_it_and_the_manifests_columns(
        write_manifest, tmp_path, clips) -> None:
    manifest = write_manifest({"id": ["a"], "path": [clips[0]["path"]]})
    out = tmp_path / "out"
    line = one_line_error(invoke("transcribe", manifest, "-o", str(out), "--passthrough",
                                 "nosuch"))
    assert "nosuch" in line and "it has: id, path" in line and "--passthrough" in line
    assert not out.exists()


def test_cuda_without_a_gpu_says_no_cuda_device(write_manifest, tmp_path, clips) -> None:
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a GPU")
    manifest = write_manifest({"id": ["a"], "path": [clips[0]["path"]]})
    out = tmp_path / "out"
    line = one_line_error(invoke("transcribe", manifest, "-o", str(out), "--device", "cuda"))
    assert "no CUDA device found" in line and "cpu" in line
    assert not out.exists()


@pytest.mark.parametrize("present, missing", [
    ({"config.json"}, "missing model.bin, tokenizer.json "),
    ({"model.bin", "config.json", "vocabulary.txt"}, "missing tokenizer.json "),
    ({"tokenizer.json"}, "missing model.bin, config.json "),
])
def test_a_folder_that_is_not_a_model_names_exactly_what_is_missing(
        write_manifest, tmp_path, clips, present, missing) -> None:
    folder = tmp_path / "notamodel"
    folder.mkdir()
    for name in present:
        (folder / name).write_text("{}")
    manifest = write_manifest({"id": ["a"], "path": [clips[0]["path"]]})
    out = tmp_path / "out"
    line = one_line_error(invoke("transcribe", manifest, "-o", str(out), "--model", str(folder)))
    assert missing in line and "expected" not in line
    assert not out.exists()


def test_eval_without_the_eval_extra_names_the_extra(tmp_path, clips, model_path,
                                                     write_manifest, monkeypatch) -> None:
    manifest = write_manifest({"id": ["a"], "path": [clips[1]["path"]],
                               "reference": [clips[1]["reference_text"]]})
    out = str(tmp_path / "out")
    assert invoke("transcribe", manifest, "-o", out, "-j", "0", "--beam-size", "1",
                  "--passthrough", "reference").exit_code == 0
    monkeypatch.setitem(sys.modules, "jiwer", None)  # as if not installed: import fails
    line = one_line_error(invoke("eval", out, "--reference-column", "reference"))
    assert "pip install 'batchscribe[eval]'" in line


def test_eval_manifest_needs_no_path_column(tmp_path, clips, model_path, write_manifest) -> None:
    manifest = write_manifest({"id": ["a"], "path": [clips[1]["path"]]})
    out = str(tmp_path / "out")
    assert invoke("transcribe", manifest, "-o", out, "-j", "0", "--beam-size", "1").exit_code == 0
    references = str(tmp_path / "refs.parquet")
    import pyarrow as pa

    pq.write_table(pa.table({"id": ["a"], "reference": [clips[1]["reference_text"]]}),
                   references)
    result = invoke("eval", out, "--reference-column", "reference", "--manifest", references)
    assert result.exit_code == 0, result.output
    assert "rows evaluated 1" in result.output


def test_an_output_path_that_is_a_file_exits_1(write_manifest, tmp_path, clips) -> None:
    manifest = write_manifest({"id": ["a"], "path": [clips[0]["path"]]})
    target = tmp_path / "taken"
    target.write_text("not a folder")
    line = one_line_error(invoke("transcribe", manifest, "-o", str(target)))
    assert "exists and is not a folder" in line


def test_a_run_that_fails_before_its_first_row_leaves_no_output_folder(
        write_manifest, tmp_path, clips) -> None:
    manifest = write_manifest({"id": ["a"], "path": [clips[0]["path"]]})
    out = tmp_path / "deep" / "out"
    one_line_error(invoke("transcribe", manifest, "-o", str(out), "--model",
                          str(tmp_path / "nowhere" / "model")))
    assert not out.exists() and not (tmp_path / "deep").exists()


def test_run_help_names_job_files_that_exist() -> None:
    result = invoke("run", "--help")
    named = re.findall(r"jobs/[\w.-]+\.toml", result.output)
    assert named and all(os.path.isfile(os.path.join(REPO, n)) for n in named), named


def test_a_model_that_fails_to_load_after_the_workers_started_writes_nothing(
        write_manifest, tmp_path, clips, model_path) -> None:
    """The model loads while the decode workers start: CTranslate2 refusing it there (a model.bin
    whose index reads but whose spec it does not know) is still one line, and nothing is written."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_path, broken)
    data = (broken / "model.bin").read_bytes()
    (broken / "model.bin").write_bytes(data.replace(b"WhisperSpec", b"WhisperSpeX", 1))
    manifest = write_manifest({"id": [c["id"] for c in clips[:3]],
                               "path": [c["path"] for c in clips[:3]]})
    out = tmp_path / "out"
    line = one_line_error(invoke("transcribe", manifest, "-o", str(out), "--model", str(broken),
                                 "-j", "2"))
    assert "cannot load the Whisper model" in line and str(broken) in line
    assert not out.exists()


def test_convert_without_torch_names_the_cpu_build(tmp_path, monkeypatch) -> None:
    # issue 28: the hint said `pip install torch`, which pulled 3.2 GB of CUDA packages
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed: import fails
    source = tmp_path / "checkpoint"
    source.mkdir()
    line = one_line_error(invoke("convert", str(source), str(tmp_path / "out")))
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in line
    assert not (tmp_path / "out").exists()
