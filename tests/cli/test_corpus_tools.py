"""`batchscribe manifest` and `batchscribe eval`, and the loop manifest -> transcribe -> eval."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from engine.cli import cli


@pytest.fixture
def corpus_dir(tmp_path, clips):
    """Nested folders of real clips, a corrupt file, a sidecar transcript, a LibriSpeech listing."""
    root = tmp_path / "corpus"
    by_id = {c["id"]: c for c in clips}
    (root / "a" / "b").mkdir(parents=True)
    (root / "libri").mkdir()
    shutil.copy(by_id["speechbrain_spk1_snt1"]["path"], root / "a" / "child.wav")
    (root / "a" / "child.txt").write_text(by_id["speechbrain_spk1_snt1"]["reference_text"] + "\n")
    shutil.copy(by_id["ljspeech_LJ001-0006"]["path"], root / "a" / "b" / "typography.mp3")
    shutil.copy(by_id["librispeech_61-70968-0000"]["path"], root / "libri" / "61-70968-0000.flac")
    (root / "libri" / "61-70968.trans.txt").write_text(
        "61-70968-0000 " + by_id["librispeech_61-70968-0000"]["reference_text"] + "\n")
    (root / "a" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    (root / "notes.md").write_text("not audio, not matched")
    return root


def test_manifest_of_a_nested_folder(corpus_dir, tmp_path, clips) -> None:
    out = tmp_path / "m.parquet"
    result = CliRunner().invoke(cli, ["manifest", str(corpus_dir), "-o", str(out), "--references",
                                      "--json", "-j", "2"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"] == 4 and summary["errors"] == 1 and summary["with_reference"] == 2
    rows = {r["id"]: r for r in pq.read_table(out).to_pylist()}
    assert sorted(rows) == ["a/b/typography.mp3", "a/broken.wav", "a/child.wav",
                            "libri/61-70968-0000.flac"]
    child = rows["a/child.wav"]
    assert child["path"] == "corpus/a/child.wav"
    assert child["duration_s"] == pytest.approx(2.87, abs=0.01)
    assert (child["sample_rate_hz"], child["channels"], child["format"]) == (16000, 1, "wav")
    assert child["reference"] == "THE CHILD ALMOST HURT THE SMALL DOG" and child["error"] is None
    mp3 = rows["a/b/typography.mp3"]
    assert mp3["duration_s"] == pytest.approx(5.68, abs=0.1) and mp3["sample_rate_hz"] == 22050
    assert rows["libri/61-70968-0000.flac"]["reference"].startswith("HE BEGAN")
    assert rows["a/broken.wav"]["error"] and rows["a/broken.wav"]["duration_s"] is None


def test_include_and_exclude_globs(corpus_dir, tmp_path) -> None:
    out = tmp_path / "m.parquet"
    result = CliRunner().invoke(cli, ["manifest", str(corpus_dir), "-o", str(out),
                                      "--include", "*.wav", "--exclude", "a/broken*"])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("id").to_pylist() == ["a/child.wav"]


def test_manifest_then_transcribe_then_eval(corpus_dir, tmp_path, model_path) -> None:
    manifest = tmp_path / "m.parquet"
    runner = CliRunner()
    assert runner.invoke(cli, ["manifest", str(corpus_dir), "-o", str(manifest),
                               "--references"]).exit_code == 0
    out = tmp_path / "out"
    result = runner.invoke(cli, ["transcribe", str(manifest), "-o", str(out), "-j", "0",
                                 "--passthrough", "reference"])
    assert result.exit_code == 3, result.output  # the broken file is an error row
    result = runner.invoke(cli, ["eval", str(out), "--reference-column", "reference", "--json",
                                 "--per-row", str(tmp_path / "wer.parquet")])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows_evaluated"] == 2
    assert report["rows_skipped"] == {"error": 1, "no_reference": 1}
    assert 0.0 <= report["wer"] <= 15.0  # tiny.en on these two clean clips
    per_row = pq.read_table(tmp_path / "wer.parquet").to_pylist()
    assert {r["id"] for r in per_row} == {"a/child.wav", "libri/61-70968-0000.flac"}
    # references can also come from the manifest, joined on id
    result = runner.invoke(cli, ["eval", str(out), "--reference-column", "reference",
                                 "--manifest", str(manifest), "--json"])
    assert json.loads(result.stdout)["wer"] == report["wer"]


def test_eval_names_a_missing_reference_column(tmp_path, write_manifest, clips,
                                               model_path) -> None:
    manifest = write_manifest({"path": [clips[0]["path"]]})
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["transcribe", manifest, "-o", str(out), "-j", "0"]
                              ).exit_code == 0
    result = CliRunner().invoke(cli, ["eval", str(out), "--reference-column", "reference"])
    assert result.exit_code == 1
    assert "no column 'reference'" in result.output and "--manifest" in result.output


@pytest.fixture(scope="module")
def small_run(clips, model_path, tmp_path_factory) -> str:
    """A real output of two clips whose ids carry the audio file's extension."""
    folder = tmp_path_factory.mktemp("small_run")
    by_id = {c["id"]: c for c in clips}
    chosen = [by_id["speechbrain_spk1_snt1"], by_id["ljspeech_LJ001-0006"]]
    pq.write_table(pa.table({
        "id": [os.path.basename(c["path"]) for c in chosen], "path": [c["path"] for c in chosen],
        "reference": [c["reference_text"] for c in chosen]}), str(folder / "m.parquet"))
    out = str(folder / "out")
    result = CliRunner().invoke(cli, ["transcribe", str(folder / "m.parquet"), "-o", out,
                                      "-j", "0", "-q", "--passthrough", "reference"])
    assert result.exit_code == 0, result.output
    return out


def test_eval_with_no_matching_id_is_an_error_naming_the_extension(small_run, tmp_path,
                                                                   clips) -> None:
    # issue 28: no id matched, and eval printed "WER 0.00% ... over 0 words" with exit 0
    references = tmp_path / "refs.parquet"
    pq.write_table(pa.table({"id": ["speechbrain_spk1_snt1", "ljspeech_LJ001-0006"],
                             "reference_text": ["the child", "printing"]}), references)
    result = CliRunner().invoke(cli, ["eval", small_run, "--reference-column", "reference_text",
                                      "--manifest", str(references)])
    assert result.exit_code == 1, result.output
    message = result.output.strip().splitlines()
    assert len(message) == 1 and "WER" not in result.output
    assert "2 differ only by a file extension" in message[0]
    assert ("transcript 'speechbrain_spk1_snt1.wav', reference 'speechbrain_spk1_snt1'"
            in message[0]) or ("transcript 'ljspeech_LJ001-0006.mp3', reference "
                               "'ljspeech_LJ001-0006'" in message[0])


def test_eval_with_no_reference_at_all_is_an_error(small_run, tmp_path) -> None:
    references = tmp_path / "refs.parquet"
    pq.write_table(pa.table({"id": ["speechbrain_spk1_snt1.wav", "ljspeech_LJ001-0006.mp3"],
                             "reference": pa.array([None, " "], pa.string())}), references)
    result = CliRunner().invoke(cli, ["eval", small_run, "--reference-column", "reference",
                                      "--manifest", str(references)])
    assert result.exit_code == 1, result.output
    assert "no row of" in result.output and "2 of 2 rows have no reference" in result.output
    ok = CliRunner().invoke(cli, ["eval", small_run, "--reference-column", "reference", "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["rows_evaluated"] == 2


def test_include_narrows_the_audio_files(corpus_dir, tmp_path) -> None:
    # issue 28: `--include 'a/*'` replaced the audio filter and took a/child.txt as audio
    out = tmp_path / "m.parquet"
    result = CliRunner().invoke(cli, ["manifest", str(corpus_dir), "-o", str(out),
                                      "--include", "a/*"])
    assert result.exit_code == 0, result.output
    assert sorted(pq.read_table(out).column("id").to_pylist()) == [
        "a/b/typography.mp3", "a/broken.wav", "a/child.wav"]


def test_manifest_says_how_many_references_it_found(corpus_dir, tmp_path) -> None:
    result = CliRunner().invoke(cli, ["manifest", str(corpus_dir), "-o",
                                      str(tmp_path / "m.parquet"), "--references"])
    assert result.exit_code == 0, result.output
    assert "4 files, " in result.stderr and ", 2 with a reference;" in result.stderr
    bare = tmp_path / "bare"
    shutil.copytree(corpus_dir / "a" / "b", bare)
    result = CliRunner().invoke(cli, ["manifest", str(bare), "-o", str(tmp_path / "n.parquet"),
                                      "--references"])
    assert result.exit_code == 0, result.output
    assert ", 0 with a reference;" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "warning: no reference found (looked for NAME.txt beside each file")


def test_a_references_table_gives_references_and_ids(clips, model_path, tmp_path) -> None:
    """The shared corpus layout: audio files beside a manifest.tsv of id, file and
    reference_text. The manifest takes the table's ids, so eval joins on the table itself."""
    corpus = tmp_path / "real"
    corpus.mkdir()
    chosen = sorted(clips, key=lambda c: float(c["duration_s"]))[:2]
    for clip in chosen:
        shutil.copy(clip["path"], corpus)
    shutil.copy(os.path.join(os.path.dirname(chosen[0]["path"]), "manifest.tsv"), corpus)
    manifest = tmp_path / "m.parquet"
    result = CliRunner().invoke(cli, ["manifest", str(corpus), "-o", str(manifest),
                                      "--reference-table", str(corpus / "manifest.tsv"),
                                      "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["with_reference"] == 2
    rows = {r["id"]: r for r in pq.read_table(manifest).to_pylist()}
    assert set(rows) == {c["id"] for c in chosen}
    assert all(rows[c["id"]]["reference"] == c["reference_text"] for c in chosen)
    out = tmp_path / "out"
    assert CliRunner().invoke(cli, ["transcribe", str(manifest), "-o", str(out), "-j", "0",
                                    "-q"]).exit_code == 0
    result = CliRunner().invoke(cli, ["eval", str(out), "--reference-column", "reference_text",
                                      "--manifest", str(corpus / "manifest.tsv"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows_evaluated"] == 2


def test_a_references_table_without_a_text_column_is_one_line(corpus_dir, tmp_path) -> None:
    table = tmp_path / "refs.csv"
    table.write_text("file,words\na/child.wav,the child\n")
    result = CliRunner().invoke(cli, ["manifest", str(corpus_dir), "-o",
                                      str(tmp_path / "m.parquet"), "--reference-table",
                                      str(table)])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "needs a file or id column and a text column" in line and "it has: file, words" in line
