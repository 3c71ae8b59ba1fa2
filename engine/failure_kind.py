"""Which item failures may go away on their own: the `error_kind` of an error row.

Permanent: the input itself is at fault (not audio, corrupt, truncated, empty, no audio stream, a
row option the model cannot honour); a rerun skips these rows unless asked (`--retry-errors`).
Transient: the cause lies outside the file's bytes (a worker killed by the OOM killer, a file not
there yet, an I/O or network error, a timeout, memory exhausted); a rerun retries these rows.
"""

from __future__ import annotations

from engine.types import ErrorKind

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (OSError, MemoryError, TimeoutError)


def failure_kind(error: BaseException) -> ErrorKind:
    """The kind of an exception that cost one item its row.

    An `ItemFailure` says so itself (its `transient` flag); a decoder's error caused by an I/O
    error (`raise ... from OSError`) is transient; any other OSError, MemoryError or timeout is
    transient; the rest (a decoder refusing the bytes) is permanent.
    """
    flag = getattr(error, "transient", None)
    if isinstance(flag, bool):
        return "transient" if flag else _cause_kind(error)
    if isinstance(error, _TRANSIENT_TYPES):
        return "transient"
    return _cause_kind(error)


def _cause_kind(error: BaseException) -> ErrorKind:
    cause = error.__cause__
    if cause is None:
        return "permanent"
    if isinstance(cause, _TRANSIENT_TYPES):
        return "transient"
    return "permanent"
