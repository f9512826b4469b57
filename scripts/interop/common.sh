# shellcheck shell=bash
# Shared helpers for scripts/install-interop.sh and scripts/kafka-reference.sh.
# Sourced, not run. Expects ROOT (the repo root) to be set by the caller.
#
# Everything these scripts fetch lands under $ROOT/.cache (git-ignored), so a
# fresh clone re-installs from the pinned versions and an old checkout never
# picks up someone else's jars.

CACHE="${CACHE:-$ROOT/.cache}"

log() { echo "interop: $*" >&2; }
die() { echo "interop: error: $*" >&2; exit 1; }

# Runs as root where possible; uses sudo only when we are not root (containers
# usually are root and often have no sudo at all).
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $*"
  fi
}

# apt-get update costs ~10 s and network, so it runs at most once per script
# run, and only when something really has to be installed.
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install manually: $*"
  export DEBIAN_FRONTEND=noninteractive
  if [[ $APT_UPDATED -eq 0 ]]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Java 17+ runs both the Kafka 4.x broker and its tools (their classes are
# Java 17 bytecode); Maven resolves the jars. Installed only if missing.
ensure_java_maven() {
  local pkgs=()
  command -v java >/dev/null 2>&1 || pkgs+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
  if [[ ${#pkgs[@]} -gt 0 ]]; then
    log "installing ${pkgs[*]} (apt)"
    apt_install "${pkgs[@]}"
  fi
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ -n "$v" && "${v%%.*}" -ge 17 ]] || die "java 17+ needed, found '${v:-none}'"
}

# ensure_maven_lib NAME: makes $CACHE/NAME/lib hold exactly the runtime jars of
# scripts/interop/NAME/pom.xml. A stamp holding the pom's sha256 makes the
# already-installed case a file comparison: no JVM, no Maven, no network.
# A changed pom (a version bump) re-resolves into a fresh directory that then
# replaces the old one whole, so stale jars of an older version never linger
# on the classpath and an interrupted run never leaves a half-filled lib/.
ensure_maven_lib() {
  local name="$1"
  local pom="$ROOT/scripts/interop/$name/pom.xml"
  local dest="$CACHE/$name"
  local want have=""
  [[ -f "$pom" ]] || die "missing $pom"
  want="$(sha256sum "$pom" | cut -d' ' -f1)"
  [[ -f "$dest/pom.sha256" ]] && have="$(cat "$dest/pom.sha256")"
  if [[ "$want" == "$have" && -d "$dest/lib" ]] && compgen -G "$dest/lib/*.jar" >/dev/null; then
    return 0
  fi
  ensure_java_maven
  log "resolving $name jars from Maven Central (scripts/interop/$name/pom.xml)"
  mkdir -p "$CACHE"
  local tmp
  tmp="$(mktemp -d "$CACHE/.$name.XXXXXX")"
  # -B: no colours/progress bars in logs. includeScope=runtime: what a JVM
  # needs to run it, no test or provided jars.
  # Maven's output goes to a log that is shown only if it fails (even -q
  # prints stray colour codes).
  if ! mvn -B -q -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "maven could not resolve $pom"
  fi
  rm -f "$tmp/mvn.log"
  echo "$want" >"$tmp/pom.sha256"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  log "$name: $(ls "$dest/lib" | wc -l) jars in ${dest#"$ROOT"/}/lib"
}
