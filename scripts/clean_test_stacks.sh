#!/usr/bin/env bash
# Remove what an interrupted e2e run left on the docker engine: containers, networks and volumes whose names start
# with the e2e prefix (every e2e compose project and helper container is named sdm-...), with the containers'
# anonymous volumes. Their containers restart with the engine (restart: unless-stopped) and would otherwise run
# beside the next suite, slowing it down.
# Run before the e2e suite; never while another suite runs on the same engine.
set -euo pipefail

readonly PREFIX="${1:-sdm-}"

names() { grep -E "^${PREFIX}" || true; }

mapfile -t containers < <(docker ps -a --format '{{.Names}}' | names)
if ((${#containers[@]})); then
  docker rm -f -v "${containers[@]}" >/dev/null
fi
mapfile -t networks < <(docker network ls --format '{{.Name}}' | names)
kept=()
for network in "${networks[@]}"; do
  # the engine can keep a stale endpoint of a removed container ("has active endpoints"): such a network has no
  # container left to slow the suite and a name no later run uses, so it is named and left, not a failure
  if ! docker network rm "$network" >/dev/null 2>&1; then
    kept+=("$network")
  fi
done
if ((${#kept[@]})); then
  printf 'clean_test_stacks: left network(s) the engine refuses to remove (no container uses them): %s\n' "${kept[*]}" >&2
fi
mapfile -t volumes < <(docker volume ls --format '{{.Name}}' | names)
if ((${#volumes[@]})); then
  docker volume rm "${volumes[@]}" >/dev/null
fi
printf 'clean_test_stacks: removed %d container(s), %d network(s), %d volume(s) left by earlier runs\n' \
  "${#containers[@]}" "$((${#networks[@]} - ${#kept[@]}))" "${#volumes[@]}"
