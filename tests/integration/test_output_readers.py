"""A real output folder loads unchanged in the tools people read Parquet with.

pyarrow, pandas and DuckDB come with the test extra and always run. polars and Hugging Face
`datasets` are heavier and optional: `pip install polars datasets` (the tests skip, naming
that command, when they are missing).
"""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from engine import DecodeConfig, RunConfig, TranscribeConfig, transcribe
from engine.io import writer as writer_module
from engine.io.runlog import META_DIR, RUNS_DIR, SUMMARY_NAME

IDS = ["a", "b", "c"]


@pytest.fixture(scope="module")
def output(tmp_path_factory, clips, model_path) -> str:
    """Three short clips transcribed in two invocations (two parts, two run records)."""
    import pyarrow as pa

    folder = tmp_path_factory.mktemp("readers")
    short = [c for c in clips if float(c["duration_s"]) < 4][:3]
    out = str(folder / "out")
    for n, rows in enumerate((1, 3)):  # a first run of one row, then a resumed run of three
        manifest = str(folder / f"m{n}.parquet")
        pq.write_table(pa.table({"id": IDS[:rows], "path": [c["path"] for c in short[:rows]],
                                 "speaker": ["x", "y", "z"][:rows]}), manifest)
        transcribe(TranscribeConfig(manifest=manifest, output=out,
                                    decode=DecodeConfig(beam_size=1),
                                    run=RunConfig(workers=0, passthrough=("speaker",))))
    assert os.path.isfile(os.path.join(out, SUMMARY_NAME))
    assert len(os.listdir(os.path.join(out, RUNS_DIR))) == 2
    assert sorted(n for n in os.listdir(out) if not n.endswith(".parquet")) == [META_DIR]
    assert len(os.listdir(out)) == 3  # two parts
    return out


def test_pyarrow_reads_the_folder(output) -> None:
    table = pq.read_table(output)
    assert sorted(table.column("id").to_pylist()) == IDS


def test_pandas_reads_the_folder(output) -> None:
    pd = pytest.importorskip("pandas", reason="pip install pandas")
    frame = pd.read_parquet(output)
    assert sorted(frame["id"]) == IDS and set(frame["status"]) == {"ok"}
    assert dict(zip(frame["id"], frame["speaker"])) == {"a": "x", "b": "y", "c": "z"}


def test_duckdb_reads_the_parts(output) -> None:
    duckdb = pytest.importorskip("duckdb", reason="pip install duckdb")
    rows = duckdb.sql(f"SELECT id, status FROM '{output}/*.parquet' ORDER BY id").fetchall()
    assert rows == [(i, "ok") for i in IDS]


def test_polars_reads_the_folder(output) -> None:
    pl = pytest.importorskip("polars", reason="optional: pip install polars")
    frame = pl.read_parquet(f"{output}/*.parquet")  # a bare folder: polars wants one extension
    assert sorted(frame["id"].to_list()) == IDS


def test_hf_datasets_loads_the_folder(output, tmp_path) -> None:
    datasets = pytest.importorskip("datasets", reason="optional: pip install datasets")
    loaded = datasets.load_dataset("parquet", data_dir=output, split="train",
                                   cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(loaded["id"]) == IDS


def test_temporary_part_names_are_hidden_from_readers(tmp_path) -> None:
    seen: list[str] = []

    def write(tmp: str) -> None:
        seen.append(os.path.basename(tmp))
        with open(tmp, "w") as f:
            f.write("partial")

    writer_module._atomic_write(str(tmp_path / "part-x.parquet"), write)
    assert seen and all(name.startswith((".", "_")) for name in seen)
