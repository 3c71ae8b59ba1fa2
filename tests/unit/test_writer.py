import os
import time

import pyarrow.parquet as pq

from engine.io.writer import PartWriter, output_schema, part_files, read_column
from engine.types import AudioItem, ItemError, ItemResult, Segment


def result(item_id: str) -> ItemResult:
    seg = Segment(0.0, 1.0, "hi", -0.1, 0.01, 1.0)
    return ItemResult(AudioItem(item_id, "x.wav"), "ok", "hi", "en", 1.0, 1.0, 1.0, (seg,))


def test_round_trip_and_resume_ids(tmp_path) -> None:
    out = str(tmp_path / "out")
    writer = PartWriter(out, output_schema([]), rows_per_part=2)
    for i in range(5):
        writer.write(result(f"r{i}"))
    writer.write(ItemError(AudioItem("bad", "bad.wav"), "decode", "AudioDecodeError", "boom"))
    writer.commit()
    assert len(part_files(out)) == 3
    assert sorted(read_column(out, "id")) == ["bad", "r0", "r1", "r2", "r3", "r4"]
    table = pq.read_table(part_files(out)[0])
    assert table.column("segments").to_pylist()[0][0]["text"] == "hi"
    again = PartWriter(out, output_schema([]))
    assert list(again.done_ids().contains(["r3", "bad", "new"])) == [True, True, False]


def test_uncommitted_rows_leave_no_file(tmp_path) -> None:
    out = str(tmp_path / "out")
    writer = PartWriter(out, output_schema([]), rows_per_part=100)
    writer.write(result("a"))
    assert part_files(out) == [] and not os.path.exists(out)  # created on the first part


def test_a_shards_leftovers_are_removed_by_its_next_run_and_other_shards_fresh_ones_kept(
        tmp_path) -> None:
    out = tmp_path / "out"
    (out / ".batchscribe" / "runs").mkdir(parents=True)
    mine = out / ".part-x.parquet.s0of2.11.tmp"  # 4 bytes, as a kill during a part write leaves
    record = out / ".batchscribe" / "runs" / ".r.json.s0of2.11.tmp"
    other = out / ".part-y.parquet.s1of2.12.tmp"
    stale = out / ".part-z.parquet.s1of2.13.tmp"
    for path in (mine, record, other, stale):
        path.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    PartWriter(str(out), output_schema([]), shard=(0, 2)).remove_temporaries()
    assert not mine.exists() and not record.exists() and not stale.exists()
    assert other.exists()  # a fresh one of another shard may be a live run's
    PartWriter(str(out), output_schema([])).remove_temporaries()  # one shard: no other writer
    assert not other.exists()
