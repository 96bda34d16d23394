#!/usr/bin/env bash
# The test command (README, CI): fetch the pinned model if needed, then run
# every test for real — the model tests fail, never skip, without the model.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-model.sh
cargo test --locked "$@"
