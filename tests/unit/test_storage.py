"""engine.io.storage without a server: locations, redaction, which failures are retried."""

from __future__ import annotations

import pytest

from engine.io import storage
from engine.io.storage import Retry, StorageUnavailable, with_retry

FAST = Retry(attempts=3, first_wait_s=0.001, max_wait_s=0.002)


def test_redact_cuts_user_info_and_signed_queries_anywhere_in_a_message() -> None:
    text = ("cannot decode https://me:s3cret@host/a.wav?X-Amz-Signature=abc (and "
            "s3://bucket/b.flac)")
    assert storage.redact(text) == ("cannot decode https://host/a.wav?<redacted> (and "
                                    "s3://bucket/b.flac)")
    assert storage.redact("/data/a?.wav") == "/data/a?.wav"  # local paths stay as they are


def test_relative_paths_resolve_against_local_and_remote_folders() -> None:
    assert storage.join("s3://b/manifests", "../audio/x.wav") == "s3://b/audio/x.wav"
    assert storage.join("s3://b/m", "https://h/x.wav") == "https://h/x.wav"
    assert storage.join("/data/m", "a/x.wav") == "/data/m/a/x.wav"
    assert storage.join("s3://b/m", "/abs/x.wav") == "/abs/x.wav"
    assert storage.parent("s3://b/m/manifest.parquet") == "s3://b/m"
    assert storage.is_uri("gs://b/x") and not storage.is_uri("file:///x")
    assert not storage.is_uri("/x")


class ClientConnectorError(OSError):
    """Named like aiohttp's refused-connection error."""


def test_transient_failures_are_known_by_type_name_status_and_cause() -> None:
    assert storage.is_transient(ConnectionResetError())
    assert storage.is_transient(TimeoutError())
    assert storage.is_transient(ClientConnectorError("refused"))
    server_error = OSError("busy")
    server_error.status = 503  # type: ignore[attr-defined]
    assert storage.is_transient(server_error)
    assert not storage.is_transient(FileNotFoundError("s3://b/x.wav"))
    assert not storage.is_transient(PermissionError("denied"))
    try:  # fsspec's HTTP filesystem: a refused connection surfaces as FileNotFoundError
        try:
            raise ClientConnectorError("refused")
        except OSError as e:
            raise FileNotFoundError("http://h/x.wav") from e
    except FileNotFoundError as e:
        assert storage.is_transient(e)


def test_transient_failures_are_retried_then_reported_without_secrets() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert with_retry(flaky, "s3://b/x", FAST) == "ok" and len(calls) == 3
    with pytest.raises(StorageUnavailable) as caught:
        with_retry(lambda: (_ for _ in ()).throw(TimeoutError("slow")),
                   "https://u:pw@h/x?sig=1", FAST)
    assert "after 3 tries" in str(caught.value) and "pw" not in str(caught.value)
    assert "sig=1" not in str(caught.value)


def test_permanent_failures_are_not_retried() -> None:
    calls = []

    def missing() -> None:
        calls.append(1)
        raise FileNotFoundError("s3://b/x")

    with pytest.raises(FileNotFoundError):
        with_retry(missing, "s3://b/x", FAST)
    assert len(calls) == 1


def test_local_put_and_write_are_whole_files(tmp_path) -> None:
    target = str(tmp_path / "f.txt")
    storage.write_bytes(target, b"abc")
    assert open(target, "rb").read() == b"abc"
    assert [n.name for n in tmp_path.iterdir()] == ["f.txt"]  # no temporary left
    staged = tmp_path / "staged"
    staged.write_bytes(b"part")
    storage.put_file(str(staged), str(tmp_path / "part.parquet"))
    assert not staged.exists() and (tmp_path / "part.parquet").read_bytes() == b"part"
    assert list(storage.list_files(str(tmp_path))) == [str(tmp_path / n)
                                                       for n in ("f.txt", "part.parquet")]
