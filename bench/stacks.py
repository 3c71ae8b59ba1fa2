"""Where a process's threads spend their time: a pure-Python stack sampler (no ptrace needed).

    with StackSampler("/path/stacks.txt"):
        ...work...

Every `interval_s` it records each thread's Python stack (`sys._current_frames`); threads named
alike (replica_0, replica_1, ...) are counted together. The report lists, per thread group, the
functions found most often innermost (where the thread was: a C call such as CTranslate2's
`generate` shows as the Python line that made it) and anywhere on the stack. Sampling needs the
GIL, so a thread that holds it long is seen less often than it runs; read shares as rough.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import Counter
from types import FrameType

TOP = 14


def _function(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}"


def _where(frame: FrameType) -> str:
    return f"{_function(frame)}:{frame.f_lineno}"


class StackSampler:
    def __init__(self, path: str, interval_s: float = 0.01) -> None:
        self.path, self.interval_s = path, interval_s
        self.innermost: dict[str, Counter[str]] = {}
        self.anywhere: dict[str, Counter[str]] = {}
        self.samples: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def __enter__(self) -> StackSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop.is_set():
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                group = re.sub(r"_\d+$", "", names.get(ident, "unnamed"))
                self.samples[group] += 1
                self.innermost.setdefault(group, Counter())[_where(frame)] += 1
                seen: set[str] = set()
                f: FrameType | None = frame
                while f is not None:
                    seen.add(_function(f))
                    f = f.f_back
                self.anywhere.setdefault(group, Counter()).update(seen)
            time.sleep(self.interval_s)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with open(self.path, "w", encoding="utf-8") as f:
            f.write(self.report())

    def report(self) -> str:
        lines = []
        for group, total in self.samples.most_common():
            lines.append(f"## {group}: {total} samples")
            for title, counts in (("innermost", self.innermost[group]),
                                  ("anywhere on the stack", self.anywhere[group])):
                lines.append(f"### {title}")
                lines += [f"{n / total:6.1%}  {where}" for where, n in counts.most_common(TOP)]
            lines.append("")
        return "\n".join(lines)
