"""The output folder's lock (issue 27 item 1), on a local folder and on a real local S3 server
(moto): a second holder of one shard is refused with one line naming the first, shards of one
count share the folder, overlapping shards do not, and a SIGKILLed holder's lock is taken over."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from engine.errors import OutputError
from engine.io import lock

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def holder_process(out: str) -> subprocess.Popen[str]:
    """Another process that takes the lock of shard 0/1, says so, then waits to be killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from engine.io import lock
        lock.acquire({out!r}, (0, 1))
        print("held", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_naming_the_first(tmp_path) -> None:
    out = str(tmp_path / "out")
    first = lock.acquire(out, (0, 1))
    with pytest.raises(OutputError, match="is being written by another run") as refused:
        lock.acquire(out, (0, 1))
    message = str(refused.value)
    assert f"host {socket.gethostname()}, pid {os.getpid()}, started 20" in message
    assert "\n" not in message
    first.release()
    lock.acquire(out, (0, 1)).release()  # free again
    assert not os.path.exists(out)  # the folders made for the lock go with it


def test_folders_made_for_a_refused_or_released_lock_go_with_it(tmp_path) -> None:
    out = str(tmp_path / "deep" / "er" / "out")
    lock.acquire(out, (0, 1)).release()
    assert os.listdir(tmp_path) == []


def test_shards_of_one_count_share_a_folder_and_overlapping_ones_do_not(tmp_path) -> None:
    out = str(tmp_path / "out")
    shards = [lock.acquire(out, (i, 2)) for i in range(2)]
    with pytest.raises(OutputError, match="shard [01]/2"):
        lock.acquire(out, (0, 1))
    with pytest.raises(OutputError, match="shard [01]/2"):
        lock.acquire(out, (1, 3))
    for held in shards:
        held.release()
    lock.acquire(out, (0, 1)).release()


def test_a_killed_holders_lock_is_taken_over_at_once(tmp_path) -> None:
    out = str(tmp_path / "out")
    proc = holder_process(out)
    with pytest.raises(OutputError, match=f"pid {proc.pid}"):
        lock.acquire(out, (0, 1))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert os.path.exists(os.path.join(out, ".batchscribe", "lock-shard-0-of-1"))  # left behind
    lock.acquire(out, (0, 1)).release()


def test_an_unwritable_folder_is_one_line(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="cannot write to output folder .*give a writable"):
        lock.acquire(str(blocker / "out"), (0, 1))


@pytest.fixture(scope="module")
def s3_bucket() -> Iterator[str]:
    pytest.importorskip("s3fs", reason="pip install 'batchscribe[remote]'")
    moto_server = pytest.importorskip("moto.server", reason="pip install 'moto[server]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem(client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]}).mkdir("locks")
    yield "s3://locks"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_object_store_second_holder_refused_and_killed_holder_taken_over(s3_bucket) -> None:
    out = f"{s3_bucket}/out"
    first = lock.acquire(out, (0, 1))
    with pytest.raises(OutputError, match=f"pid {os.getpid()}, started 20"):
        lock.acquire(out, (0, 1))
    other_shards = [lock.acquire(f"{s3_bucket}/shards", (i, 2)) for i in range(2)]
    first.release()
    for held in other_shards:
        held.release()
    proc = holder_process(out)
    with pytest.raises(OutputError, match=f"pid {proc.pid}"):
        lock.acquire(out, (0, 1))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lock.acquire(out, (0, 1)).release()  # its claim: this host, process gone
