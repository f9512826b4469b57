#!/usr/bin/env bash
# Installs kafkajs, the pure-JavaScript Kafka client (no librdkafka, its own
# implementation of the protocol), for the interop test server/tests/interop_node.rs.
#
#   kafkajs   .cache/node/node_modules/kafkajs, run with the system node and
#             NODE_PATH=.cache/node/node_modules
#
# The version is pinned in KAFKAJS_VERSION below; npm's download cache is
# .cache/npm-cache. Uses the system node/npm (Debian's nodejs and npm are
# installed if either is missing).
#
# Idempotent: when the pinned version is in place it runs neither npm nor node
# and finishes in milliseconds. A version bump installs into a fresh directory
# that then replaces .cache/node whole, so an interrupted run never leaves a
# half-filled node_modules.
#
# Usage: scripts/interop/install-node.sh [--quiet]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=scripts/interop/common.sh
source "$ROOT/scripts/interop/common.sh"

# Pinned: the newest kafkajs on npm when this was written (it has no dependencies).
KAFKAJS_VERSION=2.2.4
DEST="$CACHE/node"

QUIET=0
case "${1:-}" in
  --quiet) QUIET=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1" ;;
esac

# The installed version, read from its package.json without starting node.
installed_version() {
  local pj="$DEST/node_modules/kafkajs/package.json"
  [[ -f "$pj" ]] || return 0
  sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$pj" | head -n1
}

if [[ "$(installed_version)" != "$KAFKAJS_VERSION" ]]; then
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "installing nodejs npm (apt)"
    apt_install nodejs npm
  fi
  command -v node >/dev/null 2>&1 || die "nodejs installed but node not on PATH"
  command -v npm >/dev/null 2>&1 || die "npm installed but not on PATH"
  log "installing kafkajs@$KAFKAJS_VERSION into ${DEST#"$ROOT"/} (npm)"
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "$CACHE/.node.XXXXXX")"
  # --ignore-scripts: nothing to build; --no-package-lock/--no-save: the pin
  # above is the only record.
  if ! npm install --prefix "$tmp" --cache "$CACHE/npm-cache" --loglevel=error \
        --no-audit --no-fund --no-package-lock --no-save --ignore-scripts \
        "kafkajs@$KAFKAJS_VERSION" >"$tmp/npm.log" 2>&1; then
    cat "$tmp/npm.log" >&2
    rm -rf "$tmp"
    die "npm could not install kafkajs@$KAFKAJS_VERSION"
  fi
  rm -f "$tmp/npm.log"
  got="$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$tmp/node_modules/kafkajs/package.json" | head -n1)"
  [[ "$got" == "$KAFKAJS_VERSION" ]] || { rm -rf "$tmp"; die "npm installed kafkajs '$got', want $KAFKAJS_VERSION"; }
  rm -rf "$DEST"
  mv "$tmp" "$DEST"
fi

if [[ $QUIET -eq 0 ]]; then
  echo "interop: kafkajs: $(installed_version) (.cache/node/node_modules; node $(node --version 2>/dev/null || echo missing))"
fi
