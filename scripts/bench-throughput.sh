#!/usr/bin/env bash
# Batch throughput side by side (issue 5): `kesu score` (the whole process:
# read, prepare, encode, heads, rules, write) against a PyTorch script (HF
# transformers fp32, same dequantised weights and texts, 2 threads,
# length-sorted batches of 32, forward passes and tokenization only), in one
# run on one machine. PyTorch is installed into target/bench-venv by pip.
#
#   scripts/bench-throughput.sh [N]        (default 10000 complaints)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-10000}"
out=target/bench-throughput
mkdir -p "$out"

scripts/fetch-model.sh >/dev/null
cargo build --release --locked --bin kesu
kesu=target/release/kesu

# N realistic complaints: the training texts in file order, cycled with a
# numbered suffix once they run out (so no two texts are identical).
python3 - "$n" "$out/texts.jsonl" models/data/raw/part*.jsonl <<'PY'
import json, sys
n, dest, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
texts = [json.loads(l)["text"] for f in files for l in open(f, encoding="utf-8") if l.strip()]
with open(dest, "w", encoding="utf-8") as o:
    for i in range(n):
        t = texts[i % len(texts)] + ("" if i < len(texts) else f"（{i // len(texts)}）")
        o.write(json.dumps({"id": f"t{i}", "text": t}, ensure_ascii=False) + "\n")
PY

[ -d "$out/hf" ] || "$kesu" export-model --out "$out/hf"
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.15.0 transformers==4.57.1
fi

echo "kesu score, $n complaints:"
start=$(date +%s.%N)
"$kesu" score --quiet --input "$out/texts.jsonl" --output "$out/scored.jsonl"
end=$(date +%s.%N)
awk -v n="$n" -v s="$start" -v e="$end" \
  'BEGIN { printf "{\"runtime\":\"kesu score (whole process)\",\"complaints\":%d,\"total_s\":%.2f,\"per_second\":%.1f}\n", n, e-s, n/(e-s) }' \
  | tee "$out/results.jsonl"
echo "PyTorch, same texts:"
"$venv/bin/python" scripts/bench_pytorch.py "$out/hf" "$out/texts.jsonl" | tee -a "$out/results.jsonl"
