#!/usr/bin/env bash
# Installs the machine tools the test suite and benchmarks need.
#
# Idempotent and cheap when there is nothing to do: scripts/test.sh calls this
# on every run, so the already-installed path must not touch apt at all (no
# `apt-get update`, no network, no lock contention). apt is only invoked for the
# tools whose command is missing, and `apt-get update` runs only then too.
#
# Targets Debian 12 (bookworm); needs root (or passwordless sudo) only when
# something actually has to be installed.
set -euo pipefail

# command -> Debian package that provides it. To add a tool, add one line.
# The command is what we probe with `command -v`; the package is what apt gets.
TOOLS=(
  "fio:fio"          # disk baselines (scripts/baseline.sh)
  "iperf3:iperf3"    # loopback network baseline (scripts/baseline.sh)
  "python3:python3"  # parses fio/iperf3 JSON in scripts/baseline.sh
  "cmake:cmake"      # builds librdkafka from source for the interop tests (rdkafka, cmake-build)
  "make:make"        # the build tool cmake generates for librdkafka
  # librdkafka 2.12's cmake config.h always defines WITH_OAUTHBEARER_OIDC (#cmakedefine01), so
  # rdkafka_conf.c includes <curl/curl.h> even with WITH_CURL=0: only the header is needed.
  "curl-config:libcurl4-openssl-dev"
)

missing_cmds=()
missing_pkgs=()
for entry in "${TOOLS[@]}"; do
  cmd="${entry%%:*}"
  pkg="${entry#*:}"
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing_cmds+=("$cmd")
    missing_pkgs+=("$pkg")
  fi
done

# Fast path: everything present, stay silent and leave apt alone.
if [[ ${#missing_pkgs[@]} -eq 0 ]]; then
  exit 0
fi

# Use sudo only when we are not already root (containers usually are root and
# often have no sudo binary at all).
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-tools: need root to install: ${missing_pkgs[*]}" >&2
    exit 1
  fi
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-tools: apt-get not found; install manually: ${missing_pkgs[*]}" >&2
  exit 1
fi

# noninteractive: never block on debconf prompts (e.g. iperf3 asks whether to
# start a daemon). --no-install-recommends keeps the install small and fast.
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null

# Verify each command really appeared, and report one line per tool.
status=0
for i in "${!missing_cmds[@]}"; do
  cmd="${missing_cmds[$i]}"
  pkg="${missing_pkgs[$i]}"
  if command -v "$cmd" >/dev/null 2>&1; then
    echo "install-tools: installed $cmd (package $pkg)"
  else
    echo "install-tools: package $pkg installed but '$cmd' still not on PATH" >&2
    status=1
  fi
done
exit "$status"
