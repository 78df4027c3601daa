#!/usr/bin/env bash
# Remove a compose project by its label: its containers, volumes and networks, then its directory on disk.
# Usage: scripts/demo_down.sh PROJECT DIR   (make demo-down: orchestrator-local .build/demo)
# A network that containers of other projects still use is left in place and named, not an error: the project is
# gone, and the other project's containers keep their network. Idempotent: a second run says there is nothing left.
set -euo pipefail

readonly PROJECT="${1:?usage: demo_down.sh PROJECT DIR}"
readonly DIR="${2:?usage: demo_down.sh PROJECT DIR}"
readonly LABEL="com.docker.compose.project=$PROJECT"

log() { printf 'demo-down: %s\n' "$*"; }

removed=()
kept=()
if command -v docker >/dev/null; then
  if ! docker info >/dev/null 2>&1; then
    if [[ -e $DIR ]]; then
      log "docker does not answer: start it (make docker-host) and run again; nothing was removed" >&2
      exit 1
    fi
  else
    mapfile -t containers < <(docker ps -aq --filter "label=$LABEL")
    if ((${#containers[@]})); then
      docker rm --force --volumes "${containers[@]}" >/dev/null
      removed+=("${#containers[@]} container(s)")
    fi
    mapfile -t volumes < <(docker volume ls -q --filter "label=$LABEL")
    if ((${#volumes[@]})); then
      docker volume rm "${volumes[@]}" >/dev/null
      removed+=("volume(s) ${volumes[*]}")
    fi
    mapfile -t networks < <(docker network ls --format '{{.Name}}' --filter "label=$LABEL")
    for network in "${networks[@]}"; do
      users="$(docker network inspect -f '{{range .Containers}}{{.Name}} {{end}}' "$network")"
      if [[ -n ${users// /} ]]; then
        kept+=("network $network, still used by ${users% }")
      else
        docker network rm "$network" >/dev/null
        removed+=("network $network")
      fi
    done
  fi
fi
if [[ -e $DIR ]]; then
  rm -rf "$DIR"
  removed+=("$DIR")
fi

if ((${#removed[@]})); then
  joined="$(printf '%s, ' "${removed[@]}")"
  log "removed ${joined%, }"
fi
for line in "${kept[@]}"; do
  log "left $line (other projects' containers); remove them first to remove it"
done
if ((${#removed[@]} == 0 && ${#kept[@]} == 0)); then
  log "nothing to remove: no container, volume or network of $PROJECT, no $DIR"
fi
