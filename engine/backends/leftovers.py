"""What a killed run leaves in the system's temporary folder, and its removal by the next run.

A run's temporary folders and files there carry its process id: `batchscribe-features-<pid>-*`
(long files' spilled chunk features) and `.batchscribe-upload-<pid>-*.tmp` (a part on its way to
an object store). A run killed with SIGKILL cannot remove them; the next run on the same machine
removes those whose process is gone (issue 27 item 5).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile

from engine.io.writer import UPLOAD_PREFIX

FEATURES_PREFIX = "batchscribe-features-"
_OWNED = re.compile(rf"^(?:{re.escape(FEATURES_PREFIX)}|{re.escape(UPLOAD_PREFIX)})(\d+)-")


def features_prefix() -> str:
    """The prefix of this run's spill folder: it names the process that owns it."""
    return f"{FEATURES_PREFIX}{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_dead_runs_temporaries(folder: str | None = None) -> list[str]:
    """Remove the temporary folders and files of runs whose process is gone; returns them."""
    folder = folder or tempfile.gettempdir()
    removed = []
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            owner = _OWNED.match(name)
            if owner is None or _alive(int(owner.group(1))):
                continue
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)
            removed.append(path)
    return removed
