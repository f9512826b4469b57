#!/usr/bin/env bash
# The whole test suite: what the README's second command and CI run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-tools.sh
# The independent Kafka clients the interop suite (server/tests/interop.rs) drives: kcat, the
# Kafka Java client, confluent-kafka. Its tests fail, never skip, when one is missing.
bash scripts/install-interop.sh --quiet
cargo test --workspace --release
# The benchmark summary's parser (scripts/bench-summary.py): Kafka perf-test output lines and
# matrix rows, checked against known inputs.
python3 scripts/bench-summary.py selftest
