#!/usr/bin/env bash
# Installs the tools the test suite and benchmarks need (placeholder until the tools land).
set -euo pipefail
