#!/usr/bin/env bash
# On the GPU machine: unpack what bench/gpu_carry.sh prepared (any subset, in any order of calls;
# idempotent), install the wheels into /tmp/site, rebuild the model once all pieces are there, and
# give CTranslate2 the libcublas.so.12 names it loads (CUDA 13's libraries under them).
# Source it:  . bench/gpu_setup.sh
mkdir -p /tmp/bs/pieces /tmp/bs/base /tmp/bs/cu12
for c in .carry/c1 .carry/c2 .carry/c3 .carry/c4 .carry/m; do
  [ -d "$c" ] || continue
  cp -n "$c"/piece.* /tmp/bs/pieces/ 2>/dev/null
  cp -n "$c"/*.json "$c"/*.sha256 /tmp/bs/base/ 2>/dev/null
  [ -d "$c/corpus" ] && cp -rn "$c/corpus" /tmp/bs/
  [ -f "$c/tokenizer.json.gz" ] && gunzip -c "$c/tokenizer.json.gz" > /tmp/bs/tokenizer.json
  ls "$c"/*.whl "$c"/wheels/*.whl 2>/dev/null | while read -r w; do
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$w"
  done
done
if [ ! -f /tmp/bs/base/model.bin ] && [ "$(ls /tmp/bs/pieces | wc -l)" -ge 6 ]; then
  cat /tmp/bs/pieces/piece.* > /tmp/bs/base/model.bin
  echo "model.bin sha256 ok? $(sha256sum /tmp/bs/base/model.bin | cut -d' ' -f1 | grep -c -f /tmp/bs/base/model.sha256)"
fi
for lib in libcublas libcublasLt; do
  src=$(find / -name "$lib.so.13*" -not -path "/proc/*" 2>/dev/null | head -1)
  [ -n "$src" ] && ln -sf "$src" "/tmp/bs/cu12/$lib.so.12"
done
export PYTHONPATH=/tmp/site:$PWD LD_LIBRARY_PATH=/tmp/bs/cu12:${LD_LIBRARY_PATH:-} PYTHONUNBUFFERED=1
