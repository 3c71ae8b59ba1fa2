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
        cues.append((seconds(match.groups()[:4]), seconds(match.groups()[4:]),
                     " ".join(lines[1:])))
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
        assert [c[2] for c in srt] == [c[2] for c in vtt]
        assert " ".join(c[2] for c in srt).split() == [w["word"].strip() for w in row["words"]]
        assert srt[0][0] == pytest.approx(row["words"][0]["start_s"], abs=1e-3)
        assert open(base + ".txt", encoding="utf-8").read() == row["text"].strip() + "\n"
        tsv = open(base + ".tsv", encoding="utf-8").read().splitlines()
        assert tsv[0] == "start\tend\ttext" and len(tsv) == len(srt) + 1
        assert int(tsv[1].split("\t")[0]) == round(srt[0][0] * 1000)
        assert json.load(open(base + ".json", encoding="utf-8"))["text"] == row["text"]


def test_file_names_are_safe_and_never_shared(run_output, tmp_path) -> None:
    out, rows = run_output
    target = str(tmp_path / "txt")
    export(out, "-f", "txt", "-o", target)
    names = sorted(os.listdir(target))
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.txt", n) for n in names)
    assert len({n.casefold() for n in names}) == len(names) == 6
    odd = [n for n in names if n.casefold().startswith("talks_en_01")]
    assert len(odd) == 3  # three ids that would share a name: each carries a hash of its id
    assert all(re.fullmatch(r"talks_en_01-[0-9a-f]{8}\.txt", n.lower()) for n in odd)
    texts = {open(os.path.join(target, n), encoding="utf-8").read() for n in odd}
    assert texts == {rows[i]["text"].strip() + "\n" for i in ODD_IDS}


def test_file_namer_handles_reserved_and_dot_names() -> None:
    ids = ["..", "_", "con", "x" * 500, "a b", "a b", "Same", "same"]
    namer = FileNamer(ids)
    assert namer("..") != namer("_")
    assert namer("con").startswith("con-")
    assert len(namer("x" * 500)) < 140
    assert namer("a b") == namer("a b") == "a_b"  # an id seen twice (an unsettled folder)
    assert namer("Same") != namer("same")


def test_file_names_drop_the_audio_extension_with_a_collision_rule() -> None:
    # issue 28: `jfk_inaugural.flac` gave `jfk_inaugural.flac-5d2f04c1.srt`
    ids = ["jfk_inaugural.flac", "talk.wav", "talk.mp3", "a/b.wav", "a_b.mp3", "notes.v2",
           "c.wav", "c", "x.wav", "X.WAV"]
    names = {i: FileNamer(ids)(i) for i in ids}
    assert names["jfk_inaugural.flac"] == "jfk_inaugural"
    assert (names["talk.wav"], names["talk.mp3"]) == ("talk.wav", "talk.mp3")
    assert (names["a/b.wav"], names["a_b.mp3"]) == ("a_b.wav", "a_b.mp3")
    assert names["notes.v2"] == "notes.v2"  # not an audio extension
    assert names["c.wav"] == "c.wav" and re.fullmatch(r"c-[0-9a-f]{8}", names["c"])
    assert all(re.fullmatch(r"(x\.wav|X\.WAV)-[0-9a-f]{8}", names[i]) for i in ("x.wav", "X.WAV"))
    assert names["x.wav"] != names["X.WAV"]
    backwards = FileNamer(ids[::-1])
    assert {i: backwards(i) for i in ids[::-1]} == names  # the rows' order changes nothing


def test_word_cues_follow_the_words(run_output, tmp_path) -> None:
    out, rows = run_output
    target = str(tmp_path / "words")
    export(out, "-f", "srt", "-f", "vtt", "--words", "-o", target)
    row = rows["librispeech_61-70968-0000"]
    base = os.path.join(target, "librispeech_61-70968-0000")
    cues = check_srt(open(base + ".srt", encoding="utf-8").read())
    assert [c[2] for c in cues] == [w["word"].strip() for w in row["words"]]
    assert len(check_vtt(open(base + ".vtt", encoding="utf-8").read())) == len(row["words"])


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
    assert result.exit_code == 1 and "holds no transcripts to export" in result.output
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "-f", "doc", "-o", "x"])
    assert result.exit_code == 2 and "'doc' is not one of" in result.output


def test_subtitles_are_readable(run_output, tmp_path) -> None:
    # issue 28: a cue was a whole segment (up to 15 s, one line of any length: 98 characters
    # for the LibriSpeech clip)
    out, rows = run_output
    target = tmp_path / "subs"
    export(out, "-f", "srt", "-o", str(target))
    for item_id in ("librispeech_61-70968-0000", "osr_us_000_0034_8k"):
        text = (target / f"{item_id}.srt").read_text(encoding="utf-8")
        blocks = [b.split("\n") for b in text.strip().split("\n\n")]
        cues = check_srt(text)
        for block, (start, end, cue_text) in zip(blocks, cues):
            lines = block[2:]
            assert 1 <= len(lines) <= 2 and all(len(line) <= 42 for line in lines), block
            assert end - start <= 7.0 or len(cue_text.split()) == 1, block
        starts = [round(w["start_s"], 3) for w in rows[item_id]["words"]]
        assert all(round(c[0], 3) in starts for c in cues)  # each cue starts on a word
    assert len(cues) >= len(rows["osr_us_000_0034_8k"]["segments"])  # never across segments


def test_subtitles_without_word_timings_split_long_segments(clips, model_path, tmp_path) -> None:
    osr = next(c for c in clips if c["id"].startswith("osr_"))
    pq.write_table(pa.table({"id": ["osr.wav"], "path": [osr["path"]]}), tmp_path / "m.parquet")
    out = tmp_path / "out"  # one segment per chunk (up to 30 s), no words
    assert CliRunner().invoke(cli, ["transcribe", str(tmp_path / "m.parquet"), "-o", str(out),
                                    "-j", "0", "-q", "--timestamps", "none"]).exit_code == 0
    export(str(out), "-f", "vtt", "-o", str(tmp_path / "subs"))
    row = read_parts(str(out))[0]
    assert max(s["end_s"] - s["start_s"] for s in row["segments"]) > 7.0
    cues = check_vtt((tmp_path / "subs" / "osr.vtt").read_text(encoding="utf-8"))
    assert all(end - start <= 7.0 for start, end, _ in cues)
    assert " ".join(c[2] for c in cues).split() == row["text"].split()
    assert cues[-1][1] == pytest.approx(row["segments"][-1]["end_s"], abs=1e-3)


def test_export_of_a_folder_without_transcripts_refuses(clips, tmp_path) -> None:
    # issue 28: an audio folder (with its manifest) gave one empty .srt per file, exit 0
    audio = tmp_path / "audio"
    audio.mkdir()
    for clip in clips:
        shutil.copy(clip["path"], audio)
    assert CliRunner().invoke(cli, ["manifest", str(audio), "-o", str(audio / "m.parquet"),
                                    "-q"]).exit_code == 0
    result = CliRunner().invoke(cli, ["export", str(audio), "-f", "srt", "-o",
                                      str(tmp_path / "subs")])
    assert result.exit_code == 1
    assert "holds no transcripts to export" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "subs").exists()


def test_export_into_a_file_is_a_clean_error(run_output, tmp_path) -> None:
    # issue 28: `-o file.txt` ended in a FileExistsError traceback
    out, _ = run_output
    (tmp_path / "file.txt").write_text("mine\n")
    result = CliRunner().invoke(cli, ["export", out, "-f", "txt", "-o",
                                      str(tmp_path / "file.txt")])
    assert result.exit_code == 1 and result.exception is not None
    assert isinstance(result.exception, SystemExit)
    assert "is a file; give a folder" in result.output
    assert (tmp_path / "file.txt").read_text() == "mine\n"
