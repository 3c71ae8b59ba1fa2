"""Manifest, audio and output in object storage and behind HTTP, against real local servers.

moto's standalone S3 server and a plain http.server on 127.0.0.1, both started by the tests; the
engine finds the S3 endpoint and credentials in the environment, as boto3 does.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import BatchConfig, DecodeConfig, ModelConfig, RunConfig, TranscribeConfig, transcribe
from engine.corpus.export import export

pytest.importorskip("s3fs", reason="pip install 'batchscribe[remote]'")
moto_server = pytest.importorskip("moto.server", reason="pip install 'moto[server]'")

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
SECRET = "not-a-real-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[str]:
    """A moto S3 server; yields its endpoint, with the environment pointing boto3 and s3fs at it."""
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": endpoint})
    fs.mkdir("corpus")
    for name in os.listdir(DATA):
        if not name.endswith((".md", ".tsv")):
            fs.put_file(os.path.join(DATA, name), f"corpus/audio/{name}")
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def http_base(short, tmp_path_factory) -> Iterator[str]:
    """tests/data served over HTTP (https-like URLs), with a manifest of relative paths in
    manifests/m.parquet."""
    folder = tmp_path_factory.mktemp("http")
    shutil.copytree(DATA, folder / "data")
    (folder / "data" / "manifests").mkdir()
    pq.write_table(pa.table({"id": [c["id"] for c in short],
                             "path": [f"../{c['file']}" for c in short]}),
                   str(folder / "data" / "manifests" / "m.parquet"))
    handler = functools.partial(QuietHandler, directory=str(folder / "data"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def s3fs_client():
    import s3fs

    return s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]},
                             skip_instance_cache=True)


def put_manifest(uri: str, columns: dict | pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(columns if isinstance(columns, pa.Table) else pa.table(columns), buffer)
    s3fs_client().pipe_file(uri.removeprefix("s3://"), buffer.getvalue())


def read_remote_rows(folder: str) -> list[dict]:
    fs = s3fs_client()
    rows: list[dict] = []
    if not fs.exists(folder.removeprefix("s3://")):
        return rows
    for name in sorted(fs.ls(folder.removeprefix("s3://"))):
        base = name.rsplit("/", 1)[-1]
        if base.endswith(".parquet") and not base.startswith(("_", ".")):
            with fs.open(name, "rb") as f:
                rows += pq.read_table(f).to_pylist()
    return rows


def config(manifest: str, out: str, model_path: str, **run) -> TranscribeConfig:
    return TranscribeConfig(
        manifest=manifest, output=out, model=ModelConfig(path=model_path, device="cpu"),
        batch=BatchConfig(batch_size=4), decode=DecodeConfig(beam_size=1),
        run=RunConfig(**{"workers": 1, **run}))


@pytest.fixture(scope="module")
def short(clips) -> list[dict[str, str]]:
    """The three shortest clips: an MP3, a WAV and a FLAC (a few seconds each)."""
    return sorted(clips, key=lambda c: float(c["duration_s"]))[:3]


@pytest.fixture(scope="module")
def local_texts(short, model_path, tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("local")
    manifest = str(folder / "m.parquet")
    pq.write_table(pa.table({"id": [c["id"] for c in short],
                             "path": [c["path"] for c in short]}), manifest)
    transcribe(config(manifest, str(folder / "out"), model_path))
    out = str(folder / "out")
    rows = [r for n in sorted(os.listdir(out)) if n.endswith(".parquet")
            for r in pq.read_table(os.path.join(out, n)).to_pylist()]
    return {r["id"]: r["text"] for r in rows}


def test_an_s3_recording_over_10_minutes_is_read_in_windows(s3, clips, tmp_path) -> None:
    """windows._open had no URI branch: an s3:// recording over 10 minutes silently took the
    whole-file path, outside the memory bound (issue 25 item 4)."""
    import numpy as np
    import soundfile

    from engine.config import VadConfig
    from engine.prepare.audio import decode
    from engine.prepare.stage import STREAM_ABOVE_S, Preparer
    from engine.prepare.windows import decode_windows, probe_duration_s
    from engine.types import AudioItem, PreparedItem

    pause = np.zeros(5 * 16000, dtype=np.float32)
    speech = np.concatenate([part for c in clips
                             for part in (decode(AudioItem(c["id"], path=c["path"])), pause)])
    size = int((STREAM_ABOVE_S + 60) * 16000)
    local = str(tmp_path / "long.flac")
    soundfile.write(local, np.tile(speech, size // speech.size + 1)[:size], 16000)
    s3fs_client().put_file(local, "corpus/long/long.flac")
    item = AudioItem("long", path="s3://corpus/long/long.flac")
    assert probe_duration_s(item) == pytest.approx(STREAM_ABOVE_S + 60, abs=0.01)
    (tmp_path / "spill").mkdir()
    prepared = Preparer(VadConfig(), 80, str(tmp_path / "spill"))(item)  # the default bound
    assert isinstance(prepared, PreparedItem), prepared
    assert prepared.duration_s == pytest.approx(STREAM_ABOVE_S + 60)
    # only the windowed path spills the chunks after the first to disk
    assert len(prepared.chunks) > 5 and prepared.chunks[0].spilled is None
    assert all(c.spilled is not None for c in prepared.chunks[1:])
    windows = list(decode_windows(item))
    assert len(windows) == 3  # 320 s, 320 s, 20 s
    assert np.array_equal(np.concatenate(windows), decode(AudioItem("local", path=local)))


def test_manifest_audio_and_output_in_s3_match_the_local_run(s3, short, model_path,
                                                           local_texts) -> None:
    # relative paths resolve against the manifest's own (remote) folder
    put_manifest("s3://corpus/manifests/m.parquet", {
        "id": [c["id"] for c in short], "path": [f"../audio/{c['file']}" for c in short]})
    report = transcribe(config("s3://corpus/manifests/m.parquet", "s3://corpus/out",
                               model_path, rows_per_part=2))
    assert report["counts"]["ok"] == len(short)
    rows = read_remote_rows("s3://corpus/out")
    assert {r["id"]: r["text"] for r in rows} == local_texts
    assert SECRET not in str(report)
    fs = s3fs_client()
    metadata = [fs.cat_file(p).decode() for p in fs.find("corpus/out/.batchscribe")]
    assert metadata and all(SECRET not in text for text in metadata)
    again = transcribe(config("s3://corpus/manifests/m.parquet", "s3://corpus/out", model_path))
    assert again["rows"] == 0 and len(read_remote_rows("s3://corpus/out")) == len(short)
    # export reads the remote output and writes the files to the store
    summary = export("s3://corpus/out", "s3://corpus/subs", ("srt", "txt"))
    assert summary.files == 2 * len(short)
    for row in rows:
        assert fs.cat_file(f"corpus/subs/{row['id']}.txt").decode() == row["text"].strip() + "\n"
        srt = fs.cat_file(f"corpus/subs/{row['id']}.srt").decode()
        assert srt.startswith("1\n00:00:") and " --> " in srt


def test_manifest_and_audio_over_http_match_the_local_run(http_base, model_path, local_texts,
                                                          tmp_path) -> None:
    """The manifest's relative paths resolve against its URL."""
    out = str(tmp_path / "out")
    transcribe(config(f"{http_base}/manifests/m.parquet", out, model_path, workers=0))
    rows = [r for n in sorted(os.listdir(out)) if n.endswith(".parquet")
            for r in pq.read_table(os.path.join(out, n)).to_pylist()]
    assert {r["id"]: r["text"] for r in rows} == local_texts


def test_unreachable_store_gives_a_transient_error_row_that_a_rerun_retries(
        s3, http_base, short, model_path, tmp_path) -> None:
    port = free_port()
    dead = (f"http://user:{SECRET}@127.0.0.1:{port}/{short[1]['file']}"
            f"?X-Amz-Signature={SECRET}")
    manifest = str(tmp_path / "m.parquet")
    not_audio = http_base.replace("://", f"://user:{SECRET}@") + f"/README.md?sig={SECRET}"
    pq.write_table(pa.table({"id": ["dead", "missing", "fine", "not_audio"], "path": [
        dead, f"{http_base}/no_such_file.wav", f"{http_base}/{short[0]['file']}", not_audio]}),
        manifest)
    out = str(tmp_path / "out")
    report = transcribe(config(manifest, out, model_path, workers=0))
    assert report["counts"] == {"ok": 1, "empty": 0, "error": 3}
    rows = read_local_rows(out)
    assert "cannot decode" in rows["not_audio"]["error"]
    assert SECRET not in rows["not_audio"]["error"]
    assert "storage unavailable after 4 tries" in rows["dead"]["error"]
    assert rows["dead"]["error_kind"] == "transient"
    assert "file not found" in rows["missing"]["error"]
    assert SECRET not in rows["dead"]["error"] and SECRET not in str(report)
    # the store comes back: the rerun retries the transient row, and only that one
    handler = functools.partial(QuietHandler, directory=DATA)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        transcribe(config(manifest, out, model_path, workers=0))
    finally:
        server.shutdown()
    rows = read_local_rows(out)
    assert rows["dead"]["status"] == "ok" and rows["dead"]["text"]
    assert rows["missing"]["status"] == "error"


def read_local_rows(out: str) -> dict[str, dict]:
    rows = [r for n in sorted(os.listdir(out)) if n.endswith(".parquet")
            for r in pq.read_table(os.path.join(out, n)).to_pylist()]
    assert len(rows) == len({r["id"] for r in rows}), "duplicate ids"
    return {r["id"]: r for r in rows}


def test_killed_s3_run_reruns_to_every_id_exactly_once(s3, short, model_path) -> None:
    ids = [f"{c['id']}-{n}" for n in range(4) for c in short]
    put_manifest("s3://corpus/kill/m.parquet", {
        "id": ids, "path": [f"s3://corpus/audio/{c['file']}" for _ in range(4) for c in short]})
    out = "s3://corpus/kill/out"
    cmd = [sys.executable, "-m", "engine", "transcribe", "s3://corpus/kill/m.parquet", "-o",
           out, "-q", "--rows-per-part", "2", "--beam-size", "1", "-j", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if len(read_remote_rows(out)) >= 2:
            break
        time.sleep(0.3)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(read_remote_rows(out))
    assert 0 < done_before < len(ids)
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    rows = read_remote_rows(out)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {r["status"] for r in rows} == {"ok"}
    assert SECRET not in rerun.stderr


def test_ray_backend_reads_and_writes_s3(s3, short, model_path, local_texts) -> None:
    """Manifest, audio and output in S3 on a local Ray instance; a killed run's staged part
    (left in the store's staging folder) is adopted once, not twice."""
    ray = pytest.importorskip("ray", reason="pip install 'batchscribe[ray]'")
    from engine.backends.ray_data import adopt_staged_parts
    from engine.corpus.evaluate import corpus_wer
    from engine.io.writer import output_schema
    from engine.options import build_config

    put_manifest("s3://corpus/ray/m.parquet", {
        "id": [c["id"] for c in short], "path": [f"../audio/{c['file']}" for c in short]})
    # what a killed run left: one whole staged part (its rows not yet in the output)
    staged = pa.Table.from_pylist([{"id": "staged-before", "status": "ok", "text": "staged"}],
                                  schema=output_schema([]))
    put_manifest("s3://corpus/ray/out/.ray-staging-run/staged.parquet", staged)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = transcribe(build_config("s3://corpus/ray/m.parquet", "s3://corpus/ray/out", {
            "": {"backend": "ray"}, "model": {"path": model_path, "device": "cpu"},
            "decode": {"beam_size": 1}, "run": {"workers": 0},
            "ray": {"cpus_per_model_actor": 0.5, "cpus_per_decode_actor": 0.5}}))
    finally:
        ray.shutdown()
    assert report["counts"]["ok"] == len(short)
    rows = read_remote_rows("s3://corpus/ray/out")
    texts = {r["id"]: r["text"] for r in rows}
    assert sorted(texts) == sorted([c["id"] for c in short] + ["staged-before"])
    # batches hold other neighbours on Ray: the same words (a near-tie full stop may differ)
    for c in short:
        assert corpus_wer([local_texts[c["id"]]], [texts[c["id"]]]).wer == 0.0, c["id"]
    assert adopt_staged_parts("s3://corpus/ray/out/.ray-staging-run", "s3://corpus/ray/out") == []


def test_transient_error_row_in_s3_output_is_retried_and_replaced(s3, short, model_path) -> None:
    """A file not yet in the store is a transient error row; once it is there, a rerun
    transcribes it and the output (in S3) holds that id once, as an ok row."""
    put_manifest("s3://corpus/late/m.parquet", {
        "id": ["early", "late"], "path": [f"s3://corpus/audio/{short[0]['file']}",
                                          "s3://corpus/late/audio/late.wav"]})
    out = "s3://corpus/late/out"
    first = transcribe(config("s3://corpus/late/m.parquet", out, model_path, workers=0))
    assert first["counts"] == {"ok": 1, "empty": 0, "error": 1}
    late = next(r for r in read_remote_rows(out) if r["id"] == "late")
    assert late["error_kind"] == "transient" and "file not found" in late["error"]
    s3fs_client().put_file(os.path.join(DATA, short[1]["file"]), "corpus/late/audio/late.wav")
    transcribe(config("s3://corpus/late/m.parquet", out, model_path, workers=0))
    rows = read_remote_rows(out)
    assert sorted(r["id"] for r in rows) == ["early", "late"]
    assert {r["status"] for r in rows} == {"ok"}


def test_command_line_output_and_errors_carry_no_secret_of_a_uri(http_base, model_path,
                                                                  tmp_path) -> None:
    """The final line, --json and a one-line error name the manifest and output without the
    user info or signed query of their URIs (also where a library's own message repeats them)."""
    from click.testing import CliRunner

    from engine.cli import cli

    signed = http_base.replace("://", f"://user:{SECRET}@")
    common = ["--model", model_path, "--device", "cpu", "--beam-size", "1", "-j", "0"]
    out = str(tmp_path / "out")
    manifest = f"{signed}/manifests/m.parquet?sig={SECRET}"
    done = CliRunner().invoke(cli, ["transcribe", manifest, "-o", out, *common])
    assert done.exit_code == 0, done.output
    assert "3 transcribed" in done.output and SECRET not in done.output
    again = CliRunner().invoke(cli, ["transcribe", manifest, "-o", out, "--json", *common])
    assert again.exit_code == 0, again.output
    assert '"manifest"' in again.output and SECRET not in again.output
    failed = CliRunner().invoke(cli, ["transcribe", f"{signed}/nosuch.parquet?sig={SECRET}",
                                      "-o", str(tmp_path / "out2"), *common])
    assert failed.exit_code == 1
    (line,) = failed.output.strip().splitlines()
    assert "nosuch.parquet" in line and SECRET not in line and "user" not in line
