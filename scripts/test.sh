#!/usr/bin/env bash
# The whole test suite: what the README's second command and CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh
cargo test --workspace --release
