"""Where files live: local paths and URIs (s3://, gs://, https://, any fsspec protocol).

The one place that talks to fsspec. Everything else passes strings: a local path stays on the
plain `os`/`open` road; a URI goes through the protocol's fsspec filesystem. Credentials and
the endpoint come from the environment as boto3 reads them (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL`); they are never put into a message: `redact`
strips user info and query strings (signed URLs) from any URI that is shown.

Transient network failures (connection refused or reset, timeouts, 5xx) are retried with
exponential backoff; one that persists raises `StorageUnavailable`, which the callers turn into
a transient error row (audio) or a failed run (manifest, output).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import random
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, TypeVar

T = TypeVar("T")
_URI = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@?#\s]*@")
_QUERY = re.compile(r"(://[^\s?#'\"]*)\?[^\s'\"]*")
_TRANSIENT_NAMES = ("Connection", "Connector", "Timeout", "Disconnected", "Throttl", "SlowDown",
                    "ServiceUnavailable", "EndpointConnection", "ClientPayload")
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
              FileExistsError, ValueError)


class StorageUnavailable(OSError):
    """A store did not answer (or kept failing) after every retry; worth retrying later."""


@dataclass(frozen=True, slots=True)
class Retry:
    """How often, and how patiently, a transient network failure is retried."""

    attempts: int = 4
    first_wait_s: float = 0.5
    max_wait_s: float = 8.0


DEFAULT_RETRY = Retry()


def is_uri(location: str) -> bool:
    """True for `proto://...` other than `file://`."""
    match = _URI.match(location)
    return match is not None and match.group(1).lower() != "file"


def redact(text: str) -> str:
    """`text` (a location, or a message naming some) without the user info (`user:secret@`)
    or query strings (signed URLs) of the URIs in it."""
    text = _USERINFO.sub(r"\1", text)
    return _QUERY.sub(r"\1?<redacted>", text)


def join(base: str, relative: str) -> str:
    """`relative` resolved against the folder `base`; absolute paths and URIs stay as they are."""
    if is_uri(relative) or os.path.isabs(relative):
        return relative
    if is_uri(base):
        return _uri_join(base, relative)
    return os.path.join(base, relative)


def _uri_join(base: str, relative: str) -> str:
    protocol, rest = base.split("://", 1)
    return f"{protocol}://{posixpath.normpath(posixpath.join(rest, relative))}"


def parent(location: str) -> str:
    """The folder holding a file (a URI's parent is a URI)."""
    if is_uri(location):
        protocol, rest = location.split("://", 1)
        return f"{protocol}://{posixpath.dirname(rest.rstrip('/'))}"
    return os.path.dirname(os.path.abspath(location))


def filesystem(location: str) -> tuple[Any, str]:
    """The fsspec filesystem of a URI and the path inside it; for s3:// with the endpoint of
    `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` (credentials: botocore reads the environment).

    Raises:
        ImportError: fsspec, or the protocol's package (s3fs, aiohttp...), is not installed.
    """
    try:
        import fsspec.core
    except ImportError as e:
        raise ImportError("reading or writing URIs needs fsspec: "
                          "pip install 'batchscribe[remote]'") from e
    protocol = location.split("://", 1)[0].lower() if is_uri(location) else "file"
    options: dict[str, Any] = {}
    if protocol in ("s3", "s3a"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
    try:
        fs, path = fsspec.core.url_to_fs(location, **options)
    except ImportError as e:
        raise ImportError(f"{protocol}:// needs its fsspec package ({e}); for s3:// "
                          "pip install 'batchscribe[remote]'") from e
    return fs, path


def is_transient(error: BaseException) -> bool:
    """A failure that may go away by itself: a network hiccup, a busy or restarting server.

    The causes count too: fsspec's HTTP filesystem reports a refused connection as a
    FileNotFoundError raised from the connection error."""
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        if _is_transient_one(cause):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _is_transient_one(error: BaseException) -> bool:
    if isinstance(error, StorageUnavailable):
        return True
    if isinstance(error, _PERMANENT):
        return False
    status = getattr(error, "status", None) or getattr(error, "code", None)
    if isinstance(status, int) and (status >= 500 or status == 429):
        return True
    names = [cls.__name__ for cls in type(error).__mro__]
    return isinstance(error, (ConnectionError, TimeoutError)) or any(
        key in name for name in names for key in _TRANSIENT_NAMES)


def with_retry(action: Callable[[], T], what: str, retry: Retry = DEFAULT_RETRY) -> T:
    """Run `action`, retrying transient failures with exponential backoff and jitter.

    Raises:
        StorageUnavailable: still failing after `retry.attempts` tries (`what` names it).
        Exception: a permanent failure, at once and unchanged.
    """
    wait_s = retry.first_wait_s
    for attempt in range(1, retry.attempts + 1):
        try:
            return action()
        except Exception as e:
            if not is_transient(e):
                raise
            if attempt == retry.attempts:
                raise StorageUnavailable(
                    f"{redact(what)}: storage unavailable after {attempt} tries "
                    f"({type(e).__name__}: {redact(str(e).splitlines()[0] if str(e) else '')})"
                ) from e
        time.sleep(wait_s * (0.5 + random.random()))
        wait_s = min(wait_s * 2, retry.max_wait_s)
    raise AssertionError("unreachable")


def open_read(location: str) -> IO[bytes]:
    """A seekable binary file object, streamed from the store for a URI (no local copy)."""
    if not is_uri(location):
        return open(location, "rb")
    fs, path = filesystem(location)
    return with_retry(lambda: fs.open(path, "rb"), location)


class RetryingReader(io.RawIOBase):
    """A remote file read in ranges as a decoder asks, each read retried (reopening the file
    at the same offset) when the network fails; for decoders that call back into Python and
    would take a failed read for the end of the file, `failure` keeps what went wrong."""

    def __init__(self, location: str, retry: Retry = DEFAULT_RETRY) -> None:
        super().__init__()
        self.location = location
        self.failure: StorageUnavailable | None = None
        self._retry = retry
        self._fs, self._path = filesystem(location)
        self._size = int(with_retry(lambda: self._fs.size(self._path), location, retry))
        self._file: Any = None
        self._pos = 0

    @property
    def size(self) -> int:
        return self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = with_retry(lambda: self._read_at(len(view)), self.location, self._retry)
        except StorageUnavailable as e:
            self.failure = e
            raise
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def _read_at(self, count: int) -> bytes:
        try:
            if self._file is None:
                self._file = self._fs.open(self._path, "rb")
            self._file.seek(self._pos)
            return bytes(self._file.read(count))
        except Exception:
            self._drop_file()
            raise

    def _drop_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close too
                file.close()

    def close(self) -> None:
        self._drop_file()
        super().close()


def read_bytes(location: str) -> bytes:
    if not is_uri(location):
        with open(location, "rb") as f:
            return f.read()
    fs, path = filesystem(location)
    return with_retry(lambda: bytes(fs.cat_file(path)), location)


def size(location: str) -> int:
    """The size in bytes; FileNotFoundError when there is no such file."""
    if not is_uri(location):
        return os.path.getsize(location)
    fs, path = filesystem(location)
    return int(with_retry(lambda: fs.size(path), location))


def exists(location: str) -> bool:
    if not is_uri(location):
        return os.path.exists(location)
    fs, path = filesystem(location)
    return bool(with_retry(lambda: fs.exists(path), location))


def is_dir(location: str) -> bool:
    if not is_uri(location):
        return os.path.isdir(location)
    fs, path = filesystem(location)
    return bool(with_retry(lambda: fs.isdir(path), location))


def list_files(folder: str, recursive: bool = False) -> Iterator[str]:
    """The files in a folder (names as full locations, sorted); none when it does not exist."""
    if not is_uri(folder):
        if not os.path.isdir(folder):
            return iter(())
        if not recursive:
            return iter(sorted(os.path.join(folder, n) for n in os.listdir(folder)
                               if os.path.isfile(os.path.join(folder, n))))
        return iter(sorted(os.path.join(root, n) for root, _, names in os.walk(folder)
                           for n in names))
    fs, path = filesystem(folder)
    protocol = folder.split("://", 1)[0]

    def listing() -> list[str]:
        fs.invalidate_cache(path)
        if not fs.exists(path):
            return []
        if recursive:
            return list(fs.find(path))
        return [e["name"] for e in fs.ls(path, detail=True) if e.get("type") != "directory"]

    names = with_retry(listing, folder)
    return iter(sorted(n if is_uri(n) else f"{protocol}://{n.lstrip('/')}" for n in names))


def glob(pattern: str) -> list[str]:
    """The files matching a glob pattern, sorted."""
    if not is_uri(pattern):
        import glob as local_glob

        return sorted(local_glob.glob(pattern, recursive=True))
    fs, path = filesystem(pattern)
    protocol = pattern.split("://", 1)[0]
    names = with_retry(lambda: fs.glob(path), pattern)
    return sorted(f"{protocol}://{n.lstrip('/')}" for n in names)


def make_dirs(folder: str) -> None:
    """Create a local folder (object stores have no folders: nothing to do)."""
    if not is_uri(folder):
        os.makedirs(folder, exist_ok=True)


def put_file(local_path: str, location: str) -> None:
    """Copy a finished local file to `location` whole: on an object store one complete PUT
    under the final name, so a reader never sees half of it; locally a rename."""
    if not is_uri(location):
        os.replace(local_path, location)
        return
    fs, path = filesystem(location)
    with_retry(lambda: fs.put_file(local_path, path), location)
    os.remove(local_path)


def write_bytes(location: str, data: bytes) -> None:
    """Write a small file whole: locally through a temporary name and a rename, on an object
    store as one PUT."""
    if not is_uri(location):
        tmp = f"{location}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, location)
        return
    fs, path = filesystem(location)
    with_retry(lambda: fs.pipe_file(path, data), location)


def copy(source: str, target: str) -> None:
    """Copy a file within one store (server-side on object stores: one whole object)."""
    if not is_uri(source):
        shutil.copyfile(source, target)
        return
    fs, source_path = filesystem(source)
    _, target_path = filesystem(target)
    with_retry(lambda: fs.copy(source_path, target_path), target)


def delete(location: str) -> None:
    """Remove a file; a missing one is fine."""
    if not is_uri(location):
        if os.path.exists(location):
            os.remove(location)
        return
    fs, path = filesystem(location)

    def remove() -> None:
        if fs.exists(path):
            fs.rm_file(path)

    with_retry(remove, location)


def copy_to_local(location: str, local_path: str) -> None:
    """Download a whole file (used for small files only: metadata, not audio)."""
    with open_read(location) as source, open(local_path, "wb") as target:
        shutil.copyfileobj(source, target)
