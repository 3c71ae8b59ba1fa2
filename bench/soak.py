"""The soak test of issue 27: real `batchscribe transcribe` processes under real operations.

Kills at random moments (then a rerun: every id once, texts equal to a clean run), fuzzed audio
files made from real clips (damaged ones must be error rows, nothing may crash the run), bad
manifests (one line, exit 1 or 2), read-only and full output folders (tmpfs mounts: needs root,
else skipped), concurrent runs on one folder and shards sharing it. Prints one row per check.

    python bench/soak.py [--kills 2] [--fuzzed 16] [--seed 0] [--model PATH] [--keep DIR]

The default run takes a few minutes on 2 cores; raise --kills and --fuzzed for a long soak.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import soundfile as sf
from common import REPO

DATA = os.path.join(REPO, "tests", "data")
CLIPS = ["speechbrain_spk1_snt1.wav", "librispeech_61-70968-0000.flac",
         "ljspeech_LJ001-0006.mp3", "common_voice_en_22058266.mp3",
         "mfa_clip_mfa_thoughts.flac", "osr_us_000_0034_8k.wav"]


@dataclass
class Check:
    name: str
    passed: bool | None  # None: skipped
    detail: str


@dataclass
class Soak:
    folder: str
    model: list[str]
    rng: random.Random

    def start(self, manifest: str, out: str, *extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "engine", "transcribe", manifest, "-o", out, "-q",
               "--device", "cpu", "--beam-size", "1", "-j", "1", *self.model, *extra]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=REPO, start_new_session=True)

    def run(self, manifest: str, out: str, *extra: str) -> tuple[int, list[str]]:
        proc = self.start(manifest, out, *extra)
        _, err = proc.communicate(timeout=900)
        return proc.returncode, err.decode().strip().splitlines()

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)


def manifest_of(path: str, ids: list[Any], paths: list[Any], id_type: Any = None) -> str:
    columns = {"id": pa.array(ids, id_type) if id_type is not None else ids, "path": paths}
    pq.write_table(pa.table(columns), path)
    return path


def rows_of(out: str) -> list[dict[str, Any]]:
    if not glob.glob(os.path.join(out, "part-*.parquet")):
        return []
    rows: list[dict[str, Any]] = ds.dataset(out, format="parquet").to_table(
        columns=["id", "status", "text", "error"]).to_pylist()
    return rows


def one_line(code: int, lines: list[str], want: str) -> tuple[bool, str]:
    ok = code in (1, 2) and len(lines) == 1 and want in lines[0] and "Traceback" not in lines[0]
    return ok, f"exit {code}: {lines[-1][:110] if lines else '(nothing)'}"


def check_kills(soak: Soak, kills: int) -> list[Check]:
    ids = [f"{name}-{n}" for n in range(4) for name in CLIPS]
    paths = [os.path.join(DATA, name) for _ in range(4) for name in CLIPS]
    manifest = manifest_of(soak.path("kills.parquet"), ids, paths)
    clean_out = soak.path("clean")
    started = time.monotonic()
    soak.run(manifest, clean_out)
    clean_s = time.monotonic() - started
    clean = {r["id"]: r["text"] for r in rows_of(clean_out)}
    out = soak.path("killed")
    moments = []
    for _ in range(kills):
        proc = soak.start(manifest, out, "--rows-per-part", "1")
        time.sleep(soak.rng.uniform(0.2, 0.9) * clean_s)  # from the start to near the end
        moments.append(len(rows_of(out)))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    code, lines = soak.run(manifest, out)
    rows = rows_of(out)
    once = sorted(r["id"] for r in rows) == sorted(ids)
    same = sum(clean.get(r["id"]) == r["text"] for r in rows)
    leftovers = glob.glob(os.path.join(out, "**", "*.tmp"), recursive=True)
    passed = code == 0 and once and same == len(ids) and not leftovers
    return [Check(f"{kills} SIGKILLs at random moments, then a rerun", passed,
                  f"rows at kills {moments}; every id once: {once}; texts equal to a clean run: "
                  f"{same}/{len(ids)}; .tmp left: {len(leftovers)}")]


def fuzzed_files(soak: Soak, count: int) -> tuple[list[str], set[str]]:
    """Files made from the real clips: damaged ones (must be errors) and mutated ones."""
    folder = soak.path("fuzz")
    os.makedirs(folder)
    speech, rate = sf.read(os.path.join(DATA, CLIPS[1]), dtype="float32")
    ogg = os.path.join(folder, "whole.ogg")
    sf.write(ogg, speech, rate, format="OGG", subtype="VORBIS")
    made: list[str] = []
    damaged: set[str] = set()

    def cut(source: str, name: str) -> None:
        data = open(source, "rb").read()
        target = os.path.join(folder, name)
        open(target, "wb").write(data[: int(len(data) * soak.rng.uniform(0.2, 0.9))])
        made.append(target)
        damaged.add(target)

    for n in range(count):
        kind = n % 4
        if kind == 0:
            cut(os.path.join(DATA, CLIPS[2 + n % 2]), f"cut{n}.mp3")
        elif kind == 1:
            cut(ogg, f"cut{n}.ogg")
        elif kind == 2:
            bad = speech.copy() * (1e6 if n % 8 == 2 else 1.0)
            bad[soak.rng.randrange(bad.size)] = np.nan if n % 8 == 6 else bad[0]
            target = os.path.join(folder, f"float{n}.wav")
            sf.write(target, bad, rate, subtype="FLOAT")
            made.append(target)
            damaged.add(target)
        else:
            data = bytearray(open(os.path.join(DATA, CLIPS[n % len(CLIPS)]), "rb").read())
            for _ in range(soak.rng.randint(1, 20)):  # flipped bytes: any row, never a crash
                data[soak.rng.randrange(len(data))] = soak.rng.randrange(256)
            target = os.path.join(folder, f"flipped{n}{os.path.splitext(CLIPS[n % 6])[1]}")
            open(target, "wb").write(bytes(data))
            made.append(target)
    return made, damaged


def not_files(soak: Soak) -> list[str]:
    folder = soak.path("not-files")
    os.makedirs(os.path.join(folder, "a-folder.wav"))
    os.mkfifo(os.path.join(folder, "fifo.wav"))
    os.symlink(os.path.join(folder, "loop.wav"), os.path.join(folder, "loop.wav"))
    return [os.path.join(folder, n) for n in ("a-folder.wav", "fifo.wav", "loop.wav")] + [""]


def check_fuzzed(soak: Soak, count: int) -> list[Check]:
    made, damaged = fuzzed_files(soak, count)
    odd = not_files(soak)
    paths = made + odd
    manifest = manifest_of(soak.path("fuzz.parquet"), [f"f{i}" for i in range(len(paths))],
                           paths)
    code, lines = soak.run(manifest, soak.path("fuzz-out"))
    rows = {r["id"]: r for r in rows_of(soak.path("fuzz-out"))}
    by_path = {p: rows.get(f"f{i}") for i, p in enumerate(paths)}
    ok_damaged = [p for p in damaged if (by_path[p] or {}).get("status") != "error"]
    odd_wrong = [p for p in odd if "not found" in ((by_path[p] or {}).get("error") or "")
                 or (by_path[p] or {}).get("status") != "error"]
    return [
        Check(f"{len(made)} fuzzed files ({len(damaged)} damaged), one run", code in (0, 3)
              and len(rows) == len(paths) and not ok_damaged,
              f"exit {code}; rows {len(rows)}/{len(paths)}; damaged rows not errors: "
              f"{[os.path.basename(p) for p in ok_damaged]}"),
        Check("a folder, a FIFO, a symlink loop, an empty path", not odd_wrong,
              f"rows not a permanent error saying what they are: {odd_wrong}")]


def check_manifests(soak: Soak) -> list[Check]:
    clip = os.path.join(DATA, CLIPS[0])
    bad: dict[str, tuple[Callable[[str], str], str]] = {
        "null id": (lambda p: manifest_of(p, ["a", None], [clip, clip]), "null id"),
        "empty id": (lambda p: manifest_of(p, ["a", ""], [clip, clip]), "empty id"),
        "binary ids": (lambda p: manifest_of(p, [b"a", b"b"], [clip, clip], pa.binary()),
                       "holds binary"),
        "list ids": (lambda p: manifest_of(p, [[1], [2]], [clip, clip]), "holds list"),
        "duplicate ids": (lambda p: manifest_of(p, ["a", "a"], [clip, clip]), "duplicate id"),
        "no audio column": (lambda p: _write(p, pa.table({"id": ["a"], "file": [clip]})),
                            "no 'path' or 'audio' column"),
        "integer paths": (lambda p: _write(p, pa.table({"id": ["a"], "path": [1]})),
                          "must hold strings"),
        "not Parquet": (lambda p: _text(p, "id,path\na,b.wav\n"), "not readable Parquet"),
        "empty file": (lambda p: _text(p, ""), "not readable Parquet"),
        "missing": (lambda p: p + ".gone", "does not exist"),
    }
    checks = []
    for name, (make, want) in bad.items():
        manifest = make(soak.path(f"bad-{name.replace(' ', '-')}.parquet"))
        out = soak.path(f"bad-out-{name.replace(' ', '-')}")
        passed, detail = one_line(*soak.run(manifest, out), want)
        checks.append(Check(f"bad manifest: {name}", passed and not rows_of(out), detail))
    return checks


def _write(path: str, table: pa.Table) -> str:
    pq.write_table(table, path)
    return path


def _text(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def _mount(point: str, size: str) -> bool:
    os.makedirs(point)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", point],
                          capture_output=True)
    return done.returncode == 0


def check_filesystems(soak: Soak) -> list[Check]:
    ids = [f"{name}-{n}" for n in range(4) for name in CLIPS]
    paths = [os.path.join(DATA, name) for _ in range(4) for name in CLIPS]
    manifest = manifest_of(soak.path("fs.parquet"), ids, paths)
    checks: list[Check] = []
    for name, size, remount in (("full", "96k", False), ("read-only mid-run", "4m", True),
                                ("read-only from the start", "1m", None)):
        point = soak.path(f"mnt-{len(checks)}")
        if not _mount(point, size):
            checks.append(Check(f"output folder {name}", None, "cannot mount a tmpfs (root)"))
            continue
        out = os.path.join(point, "out")
        try:
            checks.append(_filesystem_check(soak, manifest, out, point, name, remount))
        finally:
            subprocess.run(["umount", "-l", point], check=False)
    return checks


def remount_read_only(point: str) -> None:
    """Remount a tmpfs read-only; tried again while a file on it is open for writing (EBUSY:
    the run is writing a part)."""
    for _ in range(200):
        if subprocess.run(["mount", "-o", "remount,ro", point]).returncode == 0:
            return
        time.sleep(0.01)
    raise RuntimeError(f"cannot remount {point} read-only")


def _filesystem_check(soak: Soak, manifest: str, out: str, point: str, name: str,
                      remount: bool | None) -> Check:
    if remount is None:
        subprocess.run(["mount", "-o", "remount,ro", point], check=True)
    proc = soak.start(manifest, out, "--rows-per-part", "1")
    if remount:
        while proc.poll() is None and not glob.glob(os.path.join(out, "part-*.parquet")):
            time.sleep(0.05)
        remount_read_only(point)
    _, err = proc.communicate(timeout=900)
    lines = err.decode().strip().splitlines()
    passed, detail = one_line(proc.returncode, lines, "cannot")
    records = glob.glob(os.path.join(out, ".batchscribe", "runs", "*.json"))
    if remount is not None:
        rows = rows_of(out)
        passed = passed and bool(rows) and bool(records)
        detail += f"; rows kept {len(rows)}, records {len(records)}"
    return Check(f"output folder {name}", passed, detail)


def check_concurrency(soak: Soak) -> list[Check]:
    ids = [f"{name}-{n}" for n in range(2) for name in CLIPS]
    paths = [os.path.join(DATA, name) for _ in range(2) for name in CLIPS]
    manifest = manifest_of(soak.path("both.parquet"), ids, paths)
    out = soak.path("both")
    first = soak.start(manifest, out, "--rows-per-part", "1")
    while first.poll() is None and not glob.glob(os.path.join(out, "part-*.parquet")):
        time.sleep(0.05)
    second_ok, detail = one_line(*soak.run(manifest, out), "being written by another run")
    first.communicate(timeout=900)
    once = sorted(r["id"] for r in rows_of(out)) == sorted(ids)
    shards_out = soak.path("shards")
    shards = [soak.start(manifest, shards_out, "--shard", f"{i}/2") for i in range(2)]
    codes = [p.wait(timeout=900) for p in shards]
    shards_once = sorted(r["id"] for r in rows_of(shards_out)) == sorted(ids)
    return [Check("two runs on one folder at once", second_ok and first.returncode == 0 and once,
                  f"{detail}; first exit {first.returncode}; every id once: {once}"),
            Check("shards 0/2 and 1/2 into one folder at once", codes == [0, 0] and shards_once,
                  f"exits {codes}; every id once: {shards_once}")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--fuzzed", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="a CTranslate2 Whisper folder (default: the bundled)")
    parser.add_argument("--keep", help="work in this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="soak-")
    os.makedirs(folder, exist_ok=True)
    soak = Soak(folder, ["--model", args.model] if args.model else [], random.Random(args.seed))
    started = time.monotonic()
    checks: list[Check] = []
    steps: list[Callable[[], list[Check]]] = [
        lambda: check_kills(soak, args.kills), lambda: check_fuzzed(soak, args.fuzzed),
        lambda: check_manifests(soak), lambda: check_filesystems(soak),
        lambda: check_concurrency(soak)]
    for step in steps:
        for check in step():
            checks.append(check)
            mark = "SKIP" if check.passed is None else ("pass" if check.passed else "FAIL")
            print(f"{mark:<5} {check.name:<52} {check.detail}", flush=True)
    failed = sum(c.passed is False for c in checks)
    print(f"{len(checks)} checks: {len(checks) - failed} passed or skipped, {failed} failed "
          f"({time.monotonic() - started:.0f} s); work folder {folder}")
    print(json.dumps({"failed": failed}), file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
