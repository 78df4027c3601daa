#!/usr/bin/env bash
# Make this machine a docker host: Debian's docker.io engine running, Compose v2 plugin installed.
# Idempotent and fast when both already work. Needs root. See docs in images/README.md.
set -euo pipefail

readonly DOCKERD_LOG="${DOCKERD_LOG:-/var/log/dockerd.log}"
readonly DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
readonly CLI_PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
readonly DEBIAN_SOURCES=/etc/apt/sources.list.d/debian.sources
# Compose v2 is not packaged for bookworm; trixie's docker-compose is a static Go binary.
readonly COMPOSE_SUITE="${COMPOSE_SUITE:-trixie}"

export DEBIAN_FRONTEND=noninteractive

log() { printf 'docker_host: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Refresh the package lists only when the existing ones cannot satisfy the install.
apt_install() {
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

# Print the mirror URI of the main Debian archive (the stanza/line that carries the bookworm suite).
debian_mirror_uri() {
  local uri=""
  if [[ -r $DEBIAN_SOURCES ]]; then
    uri="$(awk '
      /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") s = 1 }
      END { if (u != "" && s) print u }
    ' "$DEBIAN_SOURCES" | head -n1)"
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    uri="$(awk '$1 == "deb" && $0 ~ / bookworm / { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  [[ -n $uri ]] || die "no Debian bookworm mirror found in $DEBIAN_SOURCES or /etc/apt/sources.list"
  printf '%s\n' "${uri%/}"
}

ensure_engine() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing docker.io"
    apt_install docker.io
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    log "starting dockerd (log: $DOCKERD_LOG)"
    mkdir -p "$(dirname "$DOCKERD_LOG")"
    # No init system here: run detached so dockerd outlives this script and its session.
    setsid dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  local waited=0
  until docker info >/dev/null 2>&1; do
    if (( waited >= DOCKERD_WAIT_SECONDS )); then
      tail -n 20 "$DOCKERD_LOG" >&2 || true
      die "dockerd did not answer 'docker info' within ${DOCKERD_WAIT_SECONDS}s (see $DOCKERD_LOG)"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "dockerd is up after ${waited}s"
}

ensure_compose() {
  if docker compose version >/dev/null 2>&1; then
    return 0
  fi
  local mirror tmp
  mirror="$(debian_mirror_uri)"
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064  # expand $tmp now: it is local and gone by the time EXIT fires
  trap "rm -rf '$tmp'" EXIT
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial" "$tmp/download"
  # apt drops privileges to _apt for downloads; let it write there to keep the sandbox (and no warnings).
  chmod 0755 "$tmp"
  if id _apt >/dev/null 2>&1; then chown -R _apt "$tmp/lists" "$tmp/archives" "$tmp/download"; fi
  printf 'deb %s %s main\n' "$mirror" "$COMPOSE_SUITE" >"$tmp/sources.list"
  # Private sources list, lists dir and cache keep the machine's own apt state untouched.
  local -a apt_opts=(
    -o "Dir::Etc::sourcelist=$tmp/sources.list"
    -o "Dir::Etc::sourceparts=-"
    -o "Dir::State::Lists=$tmp/lists"
    -o "Dir::Cache::archives=$tmp/archives"
    -o "Dir::Cache::pkgcache="
    -o "Dir::Cache::srcpkgcache="
    -o "APT::Get::List-Cleanup=0"
  )
  log "fetching docker-compose from $mirror $COMPOSE_SUITE"
  apt-get "${apt_opts[@]}" update -qq
  (cd "$tmp/download" && apt-get "${apt_opts[@]}" download -qq docker-compose)
  local deb
  deb="$(find "$tmp/download" -maxdepth 1 -name 'docker-compose_*.deb' -print -quit)"
  [[ -n $deb ]] || die "apt-get download docker-compose from $COMPOSE_SUITE produced no .deb"
  dpkg -x "$deb" "$tmp/root"
  install -D -m 0755 "$tmp/root/usr/libexec/docker/cli-plugins/docker-compose" "$CLI_PLUGIN_DIR/docker-compose"
  rm -rf "$tmp"
  trap - EXIT
  docker compose version >/dev/null 2>&1 || die "'docker compose version' still fails after installing $CLI_PLUGIN_DIR/docker-compose"
  log "installed $(docker compose version)"
}

main() {
  [[ $(id -u) -eq 0 ]] || die "run as root (installs packages and starts dockerd)"
  ensure_engine
  ensure_compose
}

main "$@"
