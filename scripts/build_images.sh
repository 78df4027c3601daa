#!/usr/bin/env bash
# Build local stand-ins for the official images our compose files name (no registry is reachable here).
# Usage: scripts/build_images.sh [--force] [--rebuild-rootfs] [IMAGE...]   IMAGE: postgres python nginx redis (default: all)
# Idempotent: an up-to-date image is skipped unless --force; debootstrap rootfs tarballs are cached.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly IMAGES_DIR="$REPO_ROOT/images"
readonly CACHE_DIR="${SAFEDEPLOY_ROOTFS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/safedeploy/rootfs}"
readonly SUITE=bookworm
readonly DEBIAN_SOURCES=/etc/apt/sources.list.d/debian.sources
# Bump when make_rootfs or a rootfs_tidy_* hook changes, so cached tarballs are rebuilt.
readonly ROOTFS_RECIPE=1

FORCE=0
REBUILD_ROOTFS=0

log() { printf 'build_images: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- one function per stand-in: tag, build context under images/, debootstrap packages -------------

image_postgres() {
  build_standin postgres:15-bookworm postgres "postgresql-15,ca-certificates,tzdata"
}

image_python() {
  build_standin python:3.11-slim-bookworm python "python3,python3-venv,python3-pip,ca-certificates"
}

image_nginx() {
  build_standin nginx:stable-bookworm nginx "nginx-light,ca-certificates"
}

image_redis() {
  build_standin redis:7-bookworm redis "redis-server,ca-certificates"
}

readonly ALL_IMAGES=(postgres python nginx redis)

# Optional per-image rootfs hooks, run on the unpacked rootfs before it is tarred.
rootfs_tidy_postgres() {
  local root="$1"
  # postgresql-common's postinst creates a "main" cluster; the entrypoint runs its own initdb instead.
  rm -rf "$root"/etc/postgresql/*/main "$root"/var/lib/postgresql/*/main
}

# --- machinery ------------------------------------------------------------------------------------

# Print the mirror URI of the main Debian archive (the stanza/line that carries the bookworm suite).
debian_mirror_uri() {
  local uri=""
  if [[ -r $DEBIAN_SOURCES ]]; then
    uri="$(awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
      END { if (u != "" && s) print u }
    ' "$DEBIAN_SOURCES" | head -n1)"
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    uri="$(awk -v suite="$SUITE" '$1 == "deb" && $0 ~ (" " suite " ") { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)"
  fi
  [[ -n $uri ]] || die "no Debian $SUITE mirror found in $DEBIAN_SOURCES or /etc/apt/sources.list"
  printf '%s\n' "${uri%/}"
}

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# Unmount anything debootstrap left mounted before deleting, so rm never walks into /proc or /sys.
remove_rootfs_dir() {
  local dir="$1" mnt
  [[ -d $dir ]] || return 0
  while read -r mnt; do
    umount -l "$mnt" || true
  done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r)
  rm -rf --one-file-system "$dir"
}

# make_rootfs NAME PACKAGES TARBALL: debootstrap a minbase rootfs and tar it (atomically) to TARBALL.
make_rootfs() {
  local name="$1" packages="$2" tarball="$3" mirror dir started
  [[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
  fi
  mirror="$(debian_mirror_uri)"
  dir="$(mktemp -d "$CACHE_DIR/.rootfs-$name.XXXXXX")"
  # shellcheck disable=SC2064  # expand $dir now: it is local and gone by the time the trap fires
  trap "remove_rootfs_dir '$dir'; rm -f '$tarball.partial'" EXIT
  started=$SECONDS
  log "debootstrap $SUITE for $name ($packages) from $mirror"
  debootstrap --variant=minbase --include="$packages" "$SUITE" "$dir" "$mirror" >"$dir.log" 2>&1 \
    || { tail -n 30 "$dir.log" >&2; die "debootstrap for $name failed (full log: $dir.log)"; }
  rm -f "$dir.log"
  # Docker supplies these per container; the host's copies must not leak into the image.
  rm -f "$dir/etc/resolv.conf" "$dir/etc/hostname"
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  if declare -F "rootfs_tidy_$name" >/dev/null; then
    "rootfs_tidy_$name" "$dir"
  fi
  tar --numeric-owner --xattrs -C "$dir" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
    -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  remove_rootfs_dir "$dir"
  trap - EXIT
  log "rootfs for $name cached as $tarball ($(du -h "$tarball" | cut -f1), $((SECONDS - started))s)"
}

# build_standin TAG CONTEXT PACKAGES: rootfs (cached) -> docker import -> docker build images/CONTEXT.
build_standin() {
  local tag="$1" name="$2" packages="$3" key recipe tarball base started
  key="$(printf '%s\n' "$SUITE" minbase "$packages" "$ROOTFS_RECIPE" | sha256sum | cut -c1-12)"
  # The recipe label lets a plain run notice an edited Dockerfile or entrypoint instead of skipping.
  recipe="$( { echo "$key"; cd "$IMAGES_DIR/$name" && find . -type f -print0 | sort -z | xargs -0 sha256sum; } \
    | sha256sum | cut -c1-12)"
  if [[ $FORCE -eq 0 ]] && image_exists "$tag"; then
    local built_recipe
    built_recipe="$(docker image inspect -f '{{index .Config.Labels "io.safedeploy.recipe"}}' "$tag")"
    if [[ -z $built_recipe ]]; then
      # Not ours (e.g. the official image loaded with docker load): never replace it silently.
      log "$tag exists and was not built by this script, leaving it alone (use --force to replace)"
      return 0
    elif [[ $built_recipe == "$recipe" ]]; then
      log "$tag is up to date, skipping (use --force to rebuild)"
      return 0
    fi
    log "$tag exists but images/$name changed since it was built: rebuilding"
  fi
  started=$SECONDS
  tarball="$CACHE_DIR/$name-$SUITE-$key.tar"
  base="safedeploy-rootfs/$name:$SUITE-$key"

  if [[ ! -s $tarball || $REBUILD_ROOTFS -eq 1 ]]; then
    # Tarballs of an older recipe or package list are dead weight.
    find "$CACHE_DIR" -maxdepth 1 -name "$name-$SUITE-*.tar" -delete
    make_rootfs "$name" "$packages" "$tarball"
    docker image rm "$base" >/dev/null 2>&1 || true
  fi
  if ! image_exists "$base"; then
    log "importing $tarball as $base"
    docker import \
      -c "LABEL org.opencontainers.image.description=\"debootstrap $SUITE rootfs for the local $tag stand-in\"" \
      "$tarball" "$base" >/dev/null
  fi
  log "building $tag"
  local output previous_id
  previous_id="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
  if ! output="$(docker build \
    --build-arg BASE="$base" \
    --label "io.safedeploy.rootfs=$base" \
    --label "io.safedeploy.recipe=$recipe" \
    -t "$tag" "$IMAGES_DIR/$name" 2>&1)"; then
    printf '%s\n' "$output" >&2
    die "docker build of $tag failed"
  fi
  if [[ -n $previous_id && $previous_id != "$(docker image inspect -f '{{.Id}}' "$tag")" ]]; then
    # Drop the superseded image unless a container still uses it; otherwise it lingers as <none>.
    docker image rm "$previous_id" >/dev/null 2>&1 || true
  fi
  log "built $tag in $((SECONDS - started))s"
}

usage() {
  sed -n '2,4s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

main() {
  local -a wanted=()
  while (($#)); do
    case "$1" in
      --force) FORCE=1 ;;
      --rebuild-rootfs) FORCE=1; REBUILD_ROOTFS=1 ;;
      -h | --help) usage; return 0 ;;
      -*) usage >&2; die "unknown option $1" ;;
      *) wanted+=("$1") ;;
    esac
    shift
  done
  ((${#wanted[@]})) || wanted=("${ALL_IMAGES[@]}")
  local image
  for image in "${wanted[@]}"; do
    declare -F "image_$image" >/dev/null || die "unknown image '$image' (known: ${ALL_IMAGES[*]})"
  done

  docker info >/dev/null 2>&1 || die "docker does not answer; run scripts/docker_host.sh first"
  # Without the buildx plugin (bookworm has none) the CLI falls back to the classic builder; say so explicitly.
  if ! docker buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
  fi

  mkdir -p "$CACHE_DIR"
  # One build at a time per cache: parallel debootstraps of the same rootfs waste minutes.
  exec 9>"$CACHE_DIR/.lock"
  flock 9

  for image in "${wanted[@]}"; do
    "image_$image"
  done
}

main "$@"
