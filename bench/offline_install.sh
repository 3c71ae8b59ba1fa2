# Install an offline bundle (bench/offline_bundle.sh) on a GPU machine without internet.
# Source it from the repository's root, so that the environment it sets stays in your shell:
#
#   . bench/offline_install.sh BUNDLE [PREFIX]
#
# BUNDLE is the bundle's folder, or its folder of parts (bundle.tar.NNN + SHA256SUMS), which are
# checked and unpacked into PREFIX first. PREFIX (default /tmp/bs) then holds:
#   PREFIX/site    the bundle's wheels, installed without dependencies (pip --target)
#   PREFIX/base    Whisper base (CTranslate2), its model.bin checked against model.sha256
#   PREFIX/corpus  the shared real corpus (--corpus PREFIX/corpus)
#   PREFIX/cu12    on a CUDA 13 host: libcublas.so.12 and libcublasLt.so.12 naming CUDA 13's
#                  libraries (CTranslate2 4.x wheels are built against CUDA 12 and load those names)
# and PYTHONPATH, LD_LIBRARY_PATH and PYTHONUNBUFFERED are exported. Running it again is harmless.
# Then, for example:
#   python3 bench/gpu.py --model /tmp/bs/base --corpus /tmp/bs/corpus --repeat 10 --out OUT

_offline_install() {
  local bundle="${1:-}" prefix="${2:-/tmp/bs}" python="${PYTHON:-python3}" wheel lib found
  if [ -z "$bundle" ] || [ ! -d "$bundle" ]; then
    echo "usage: . bench/offline_install.sh BUNDLE [PREFIX]   (BUNDLE: a folder)" >&2
    return 2
  fi
  mkdir -p "$prefix/site" "$prefix/cu12" || return 1
  if [ -f "$bundle/SHA256SUMS" ]; then
    echo "checking and unpacking the parts of $bundle into $prefix" >&2
    (cd "$bundle" && sha256sum -c --quiet SHA256SUMS) || return 1
    cat "$bundle"/bundle.tar.* | tar -x -C "$prefix" || return 1
    bundle="$prefix"
  elif [ "$(cd "$bundle" && pwd)" != "$(cd "$prefix" && pwd)" ]; then
    cp -r "$bundle/base" "$bundle/corpus" "$prefix/" || return 1
  fi
  for wheel in "$bundle"/wheels/*.whl; do
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$prefix/site" "$wheel" || return 1
  done
  if [ "$(sha256sum "$prefix/base/model.bin" | cut -d' ' -f1)" != "$(cat "$prefix/base/model.sha256")" ]; then
    echo "$prefix/base/model.bin does not match model.sha256: build the bundle again" >&2
    return 1
  fi
  if ! ldconfig -p 2>/dev/null | grep -q "libcublas.so.12"; then
    for lib in libcublas libcublasLt; do
      found=$(find / -name "$lib.so.13*" -not -path "/proc/*" 2>/dev/null | head -1)
      [ -n "$found" ] && ln -sf "$found" "$prefix/cu12/$lib.so.12"
    done
  fi
  export PYTHONPATH="$prefix/site${PYTHONPATH:+:$PYTHONPATH}"
  export LD_LIBRARY_PATH="$prefix/cu12${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONUNBUFFERED=1
  echo "installed into $prefix: model $prefix/base, corpus $prefix/corpus" >&2
}
_offline_install "$@"
