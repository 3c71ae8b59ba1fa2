"""One writer per output folder and shard: a second run is refused, naming the first.

A run holds the lock of its shard (`--shard I/N`; a run without one is shard 0/1) from before it
settles or decodes anything until its run record is written, so that shards 0/2 and 1/2 share a
folder, while two runs of one shard, or of shards that overlap (0/1 beside 1/2), do not.

- Local folder: `OUT/.batchscribe/lock-shard-I-of-N`, held with `flock`; the kernel lets go of a
  killed run's lock, so the next run takes it over at once. The file says who holds it (host,
  pid, start time) and goes when the run ends.
- Object store (no locks, no rename, strong read-after-write): every run puts a claim,
  `OUT/.batchscribe/locks/shard-I-of-N-<time>-<tag>.json`, then lists the claims; it goes on only
  when no other live claim overlaps its shard (two that start together may both step back, never
  both go on). A live run rewrites its claim every `HEARTBEAT_S`; a claim not rewritten for
  `STALE_S`, or one of this host whose process is gone, is stale and deleted. Issue 27 item 1.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from engine.errors import OutputError
from engine.io import storage

META_DIR = ".batchscribe"
LOCK_PREFIX = "lock-shard-"
CLAIMS_DIR = f"{META_DIR}/locks"
HEARTBEAT_S = 20.0
STALE_S = 120.0


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a lock."""

    host: str
    pid: int
    started_utc: str
    shard: tuple[int, int]
    heartbeat_s: float = 0.0  # time.time() of the claim's last rewrite (object stores)

    @classmethod
    def me(cls, shard: tuple[int, int]) -> Holder:
        started = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return cls(socket.gethostname(), os.getpid(), started, shard, time.time())

    @classmethod
    def parse(cls, text: bytes | str) -> Holder | None:
        try:
            data = json.loads(text)
            return cls(str(data["host"]), int(data["pid"]), str(data["started_utc"]),
                       (int(data["shard"][0]), int(data["shard"][1])),
                       float(data.get("heartbeat_s", 0.0)))
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    def dump(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    def describe(self) -> str:
        index, count = self.shard
        return (f"host {self.host}, pid {self.pid}, started {self.started_utc}, "
                f"shard {index}/{count}")

    def is_dead_here(self) -> bool:
        """True when this holder ran on this host and its process is gone."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two shards may hold one id: the same shard, or shards of different counts."""
    return a == b or a[1] != b[1]


class FolderLock:
    """A held lock; `release` lets it go (a killed run's lock is taken over by the next)."""

    def release(self) -> None:
        raise NotImplementedError


def acquire(output_dir: str, shard: tuple[int, int]) -> FolderLock:
    """Take the output folder's lock for `shard`, creating the folder's metadata folder.

    Raises:
        OutputError: another live run writes this shard (or one that overlaps it), naming it;
            or the folder cannot be written at all (read-only, not a folder, no space).
    """
    if storage.is_uri(output_dir):
        return _StoreLock(output_dir, shard)
    return _LocalLock(output_dir, shard)


def _refusal(output_dir: str, holder: Holder | None) -> OutputError:
    who = holder.describe() if holder is not None else "holder unknown"
    return OutputError(f"{storage.redact(output_dir)} is being written by another run ({who}); "
                       "wait for it to finish, or write to another folder")


def _unwritable(output_dir: str, error: OSError) -> OutputError:
    reason = error.strerror or str(error)
    return OutputError(f"cannot write to output folder {storage.redact(output_dir)}: {reason} "
                       f"(errno {errno.errorcode.get(error.errno or 0, error.errno)}); give a "
                       "writable folder")


class _LocalLock(FolderLock):
    def __init__(self, output_dir: str, shard: tuple[int, int]) -> None:
        self._dir = os.path.join(output_dir, META_DIR)
        self._path = os.path.join(self._dir, f"{LOCK_PREFIX}{shard[0]}-of-{shard[1]}")
        # made for the lock: removed with it when the run leaves them empty (a failed start)
        self._created = _missing_folders(os.path.join(self._dir, "runs"))
        try:
            os.makedirs(self._dir, exist_ok=True)
            self._fd = self._hold(output_dir)
            self._refuse_overlapping(output_dir, shard)
            with open(self._path, "r+b") as f:  # the held descriptor stays read-only: a
                f.truncate(0)                     # folder can still be remounted read-only
                f.write(Holder.me(shard).dump())
        except BaseException as e:
            if hasattr(self, "_fd"):  # held: removed as a release does
                with contextlib.suppress(OSError):
                    os.unlink(self._path)
                os.close(self._fd)
            self._remove_created()
            if isinstance(e, OSError):
                raise _unwritable(output_dir, e) from e
            raise

    def _hold(self, output_dir: str) -> int:
        """The open, flocked lock file (the file at the path now, not one a leaver unlinked)."""
        while True:
            fd = os.open(self._path, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = Holder.parse(os.pread(fd, 4096, 0))
                os.close(fd)
                raise _refusal(output_dir, holder) from None
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(fd).st_ino == os.stat(self._path).st_ino:
                    return fd
            os.close(fd)  # the holder left and removed it while we waited: take the new one

    def _refuse_overlapping(self, output_dir: str, shard: tuple[int, int]) -> None:
        for name in os.listdir(self._dir):
            if not name.startswith(LOCK_PREFIX) or os.path.join(self._dir, name) == self._path:
                continue
            other = _shard_of(name[len(LOCK_PREFIX):])
            if other is None or not overlap(shard, other):
                continue
            with contextlib.suppress(FileNotFoundError), \
                    open(os.path.join(self._dir, name), "rb") as f:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise _refusal(output_dir, Holder.parse(f.read(4096))) from None

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path)  # still held: a run waiting on the old file retries
        os.close(self._fd)
        self._remove_created()

    def _remove_created(self) -> None:
        for folder in self._created:
            with contextlib.suppress(OSError):
                os.rmdir(folder)  # only when empty


def _missing_folders(folder: str) -> list[str]:
    """`folder` and its ancestors that do not exist yet, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        missing.append(folder)
        folder = os.path.dirname(folder)
    return missing


def _shard_of(text: str) -> tuple[int, int] | None:
    parts = text.split("-of-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


class _StoreLock(FolderLock):
    def __init__(self, output_dir: str, shard: tuple[int, int]) -> None:
        self._output = output_dir
        self._holder = Holder.me(shard)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        self._claim = storage.join(
            output_dir, f"{CLAIMS_DIR}/shard-{shard[0]}-of-{shard[1]}-{stamp}-"
            f"{uuid.uuid4().hex[:8]}.json")
        self._stop = threading.Event()
        try:
            storage.write_bytes(self._claim, self._holder.dump())
            rival = self._live_rival(shard)
        except OSError as e:
            raise _unwritable(output_dir, e) from e
        if rival is not None:
            with contextlib.suppress(OSError):
                storage.delete(self._claim)
            raise _refusal(output_dir, rival)
        self._beat = threading.Thread(target=self._heartbeat, name="lock-heartbeat", daemon=True)
        self._beat.start()

    def _live_rival(self, shard: tuple[int, int]) -> Holder | None:
        for location in storage.list_files(storage.join(self._output, CLAIMS_DIR)):
            if location.rstrip("/").endswith(self._claim.rsplit("/", 1)[-1]):
                continue
            holder = _read_claim(location)
            if holder is None or not overlap(shard, holder.shard):
                continue
            if holder.is_dead_here() or time.time() - holder.heartbeat_s > STALE_S:
                with contextlib.suppress(OSError):
                    storage.delete(location)  # a killed run's claim: taken over
                continue
            return holder
        return None

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            beat = Holder(self._holder.host, self._holder.pid, self._holder.started_utc,
                          self._holder.shard, time.time())
            with contextlib.suppress(OSError):
                storage.write_bytes(self._claim, beat.dump())

    def release(self) -> None:
        self._stop.set()
        self._beat.join(timeout=5)
        with contextlib.suppress(OSError):
            storage.delete(self._claim)


def _read_claim(location: str) -> Holder | None:
    try:
        data: Any = storage.read_bytes(location)
    except FileNotFoundError:
        return None
    return Holder.parse(data)
