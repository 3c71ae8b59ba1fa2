"""`batchscribe export` on a real run's output (tiny.en on the clips in tests/data)."""

from __future__ import annotations

import json
import os
import re
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from engine import BatchConfig, DecodeConfig, ModelConfig, RunConfig, TranscribeConfig, transcribe
from engine.cli import cli
from engine.corpus.export import FileNamer

SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
VTT_TIME = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"
# ids that must be made safe, and that clash once made safe or case-folded
ODD_IDS = ("talks/en:01", "talks_en_01", "TALKS_EN_01")


def seconds(match: tuple[str, ...]) -> float:
    h, m, s, ms = (int(x) for x in match)
    return h * 3600 + m * 60 + s + ms / 1000


@pytest.fixture(scope="module")
def run_output(clips, model_path, tmp_path_factory) -> tuple[str, dict[str, dict]]:
    """A real output with word timings: the clips (three under awkward ids) and one error row."""
    folder = tmp_path_factory.mktemp("export")
    broken = folder / "notes.wav"
    broken.write_text("not audio\n" * 50)
    ids = [c["id"] for c in clips[:3]] + list(ODD_IDS) + ["broken"]
    paths = [c["path"] for c in clips] + [str(broken)]
    pq.write_table(pa.table({"id": ids, "path": paths}), str(folder / "m.parquet"))
    out = str(folder / "out")
    transcribe(TranscribeConfig(
        manifest=str(folder / "m.parquet"), output=out,
        model=ModelConfig(path=model_path, device="cpu"), batch=BatchConfig(batch_size=4),
        decode=DecodeConfig(word_timestamps=True), run=RunConfig(workers=0, rows_per_part=3)))
    return out, {r["id"]: r for r in read_parts(out)}


def read_parts(folder: str) -> list[dict]:
    return [row for name in sorted(os.listdir(folder)) if name.endswith(".parquet")
            for row in pq.read_table(os.path.join(folder, name)).to_pylist()]


def export(*args: str) -> dict:
    result = CliRunner().invoke(cli, ["export", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def check_srt(text: str) -> list[tuple[float, float, str]]:
    blocks = [b for b in text.strip().split("\n\n") if b]
    cues = []
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(number), f"cue numbering broken at {block!r}"
        match = re.fullmatch(f"{SRT_TIME} --> {SRT_TIME}", lines[1])
        assert match, f"bad SRT time line {lines[1]!r}"
        start, end = seconds(match.groups()[:4]), seconds(match.groups()[4:])
        assert lines[2].strip()
        cues.append((start, end, " ".join(lines[2:])))
    check_times(cues)
    return cues


def check_vtt(text: str) -> list[tuple[float, float, str]]:
    head, *blocks = text.split("\n\n")
    assert head == "WEBVTT"
    cues = []
    for block in filter(None, (b.strip() for b in blocks)):
        lines = block.split("\n")
        match = re.fullmatch(f"{VTT_TIME} --> {VTT_TIME}", lines[0])
        assert match, f"bad WebVTT time line {lines[0]!r}"
        cues.append((seconds(match.groups()[:4]), seconds(match.groups()[4:]), lines[1]))
    check_times(cues)
    return cues


def check_times(cues: list[tuple[float, float, str]]) -> None:
    assert cues, "no cues"
    starts = [c[0] for c in cues]
    assert starts == sorted(starts), "cues out of order"
    assert all(end >= start for start, end, _ in cues)


def test_every_format_of_every_row_is_a_valid_file(run_output, tmp_path) -> None:
    out, rows = run_output
    target = str(tmp_path / "files")
    summary = export(out, "-f", "srt", "-f", "vtt", "-f", "txt", "-f", "tsv", "-f", "json",
                     "-o", target)
    ok = {i: r for i, r in rows.items() if r["status"] == "ok"}
    assert summary["rows"] == 7 and summary["skipped_errors"] == 1
    assert summary["files"] == 5 * len(ok) == len(os.listdir(target))
    by_id = {}
    for name in os.listdir(target):
        if name.endswith(".json"):
            row = json.load(open(os.path.join(target, name), encoding="utf-8"))
            by_id[row["id"]] = name[: -len(".json")]
    assert set(by_id) == set(ok), "one file per ok row, named from its id"
    for item_id, stem in by_id.items():
        row = ok[item_id]
        base = os.path.join(target, stem)
        srt = check_srt(open(base + ".srt", encoding="utf-8").read())
        vtt = check_vtt(open(base + ".vtt", encoding="utf-8").read())
        assert len(srt) == len(vtt) == len(row["segments"])
        assert [c[2] for c in srt] == [" ".join(s["text"].split()) for s in row["segments"]]
        assert srt[0][0] == pytest.approx(row["segments"][0]["start_s"], abs=1e-3)
        assert open(base + ".txt", encoding="utf-8").read() == row["text"].strip() + "\n"
        tsv = open(base + ".tsv", encoding="utf-8").read().splitlines()
        assert tsv[0] == "start\tend\ttext" and len(tsv) == len(row["segments"]) + 1
        assert int(tsv[1].split("\t")[0]) == round(row["segments"][0]["start_s"] * 1000)
        assert json.load(open(base + ".json", encoding="utf-8"))["text"] == row["text"]


def test_file_names_are_safe_and_never_shared(run_output, tmp_path) -> None:
    out, rows = run_output
    target = str(tmp_path / "txt")
    export(out, "-f", "txt", "-o", target)
    names = sorted(os.listdir(target))
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.txt", n) for n in names)
    assert len({n.casefold() for n in names}) == len(names) == 6
    assert "talks_en_01.txt" in names  # an id that is already safe keeps its name
    odd = [n for n in names if n.casefold().startswith("talks_en_01")]
    assert len(odd) == 3
    texts = {open(os.path.join(target, n), encoding="utf-8").read() for n in odd}
    assert texts == {rows[i]["text"].strip() + "\n" for i in ODD_IDS}


def test_file_namer_handles_reserved_and_dot_names() -> None:
    namer = FileNamer()
    assert namer("..") != namer("_")
    assert namer("con").startswith("con-")
    assert len(namer("x" * 500)) < 140
    assert namer("a b") == namer("a b")  # one id seen twice (an unsettled folder): one file
    assert namer("Same") != namer("same")


def test_word_cues_follow_the_words(run_output, tmp_path) -> None:
    out, rows = run_output
    target = str(tmp_path / "words")
    export(out, "-f", "srt", "-f", "vtt", "--words", "-o", target)
    row = rows["talks_en_01"]
    cues = check_srt(open(os.path.join(target, "talks_en_01.srt"), encoding="utf-8").read())
    assert [c[2] for c in cues] == [w["word"].strip() for w in row["words"]]
    assert len(check_vtt(open(os.path.join(target, "talks_en_01.vtt"),
                              encoding="utf-8").read())) == len(row["words"])


def test_word_cues_without_word_timings_fail_with_one_line(run_output, tmp_path) -> None:
    out, _ = run_output
    copy = tmp_path / "no_words"
    shutil.copytree(out, copy)
    for name in os.listdir(copy):
        if name.endswith(".parquet"):
            table = pq.read_table(copy / name)
            table = table.set_column(table.schema.get_field_index("words"), "words",
                                     pa.nulls(table.num_rows, table.schema.field("words").type))
            pq.write_table(table, copy / name)
    result = CliRunner().invoke(cli, ["export", str(copy), "-f", "srt", "--words",
                                      "-o", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "has no word timings; transcribe with word timestamps" in result.output


def test_partial_output_exports_the_committed_parts_only(run_output, tmp_path) -> None:
    """A killed run leaves committed parts, a half-written temporary and its metadata."""
    out, _ = run_output
    partial = tmp_path / "partial"
    shutil.copytree(out, partial)
    parts = sorted(n for n in os.listdir(partial) if n.endswith(".parquet"))
    assert len(parts) >= 2
    os.remove(partial / parts[-1])
    (partial / f".{parts[-1]}.123.tmp").write_bytes(b"PAR1 half a part")
    expected = [row["status"] for row in read_parts(str(partial))]
    summary = export(str(partial), "-f", "txt", "-o", str(tmp_path / "t"))
    assert summary["rows"] == len(expected) < 7
    assert summary["files"] == expected.count("ok")


def test_no_parts_and_unknown_format_are_clear_errors(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "-f", "srt", "-o", "x"])
    assert result.exit_code == 1 and "has no Parquet parts to export" in result.output
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "-f", "doc", "-o", "x"])
    assert result.exit_code == 2 and "'doc' is not one of" in result.output
