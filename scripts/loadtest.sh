#!/usr/bin/env bash
# HTTP load test of `kesu serve` (issue 4's figures in docs/benchmarks.md):
# p50/p99 at concurrency 1, 8 and 32, peak complaints per second, single-call
# latency while a batch job runs, and the offline scorer on the same texts.
#
#   scripts/loadtest.sh [SECONDS_PER_RUN]      (default 20)
#
# Texts: every 7th complaint of models/data/raw (1,130 mixed lengths). The
# "typical" single complaint is one 64-token text. Results: target/loadtest/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

secs="${1:-20}"
port="${KESU_LOADTEST_PORT:-18080}"
out=target/loadtest
mkdir -p "$out"

scripts/fetch-model.sh >/dev/null
cargo build --release --locked --bin kesu --example loadgen
kesu=target/release/kesu
loadgen=target/release/examples/loadgen

awk 'NR % 7 == 0' models/data/raw/part*.jsonl > "$out/texts.jsonl"
typical="我上周在你们官方商城买的空气净化器，用了三天就有异响，滤网还有一股焦味。客服让我自己寄回检测，运费还要我出，这合理吗？请尽快给我换一台新的。"

"$kesu" serve --addr "127.0.0.1:$port" --log warn &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.5
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { echo "loadtest: server not ready" >&2; exit 1; }

url="http://127.0.0.1:$port"
results="$out/results.jsonl"
: > "$results"
run() { "$loadgen" --url "$url" --seconds "$secs" "$@" | tee -a "$results"; }

echo "tokens in the typical complaint: $("$kesu" embed --text "$typical" | grep -o '"tokens":[0-9]*')"
run --label "typical c1 idle" --text "$typical" --concurrency 1
run --label "typical c1 during batch job" --text "$typical" --concurrency 1 --background-batch 32
run --label "mixed c1" --texts "$out/texts.jsonl" --concurrency 1
run --label "mixed c8" --texts "$out/texts.jsonl" --concurrency 8
run --label "mixed c32" --texts "$out/texts.jsonl" --concurrency 32
run --label "all texts once, c32 (peak throughput)" --texts "$out/texts.jsonl" --concurrency 32 --all

kill -TERM "$server"
wait "$server" || true
trap - EXIT

# The offline scorer on the same texts (model load excluded: it is timed by
# the scorer's own figures on stderr).
start=$(date +%s.%N)
"$kesu" score --input "$out/texts.jsonl" --output "$out/scored.jsonl" 2>"$out/score.log"
end=$(date +%s.%N)
n=$(wc -l < "$out/texts.jsonl")
awk -v n="$n" -v s="$start" -v e="$end" \
  'BEGIN { printf "{\"label\":\"offline kesu score (incl. ~1 s load)\",\"complaints\":%d,\"seconds\":%.2f,\"per_second\":%.1f}\n", n, e-s, n/(e-s) }' \
  | tee -a "$results"
