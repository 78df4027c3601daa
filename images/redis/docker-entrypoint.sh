#!/usr/bin/env bash
# Entrypoint of the local redis stand-in: the official image's interface as compose files use it.
# `redis-server [FILE.conf] [--option value...]`, or options alone; runs in the foreground as user redis in /data.
set -Eeo pipefail

# An option or a config file first: like the official image, run redis-server with them.
if [[ ${1#-} != "$1" || ${1%.conf} != "$1" ]]; then
  set -- redis-server "$@"
fi

if [[ $1 == redis-server && ! ${2:-} =~ ^(-v|--version|-h|--help|--test-memory|--check-system)$ ]]; then
  shift
  config=()
  if [[ ${1:-} == *.conf ]]; then
    config=("$1")
    shift
  fi
  # The official image is built with protected mode off (the container network is the boundary); given before
  # the caller's options, so an explicit --protected-mode among them still wins.
  set -- redis-server "${config[@]}" --protected-mode no "$@"
  if [[ $(id -u) -eq 0 ]]; then
    find . \! -user redis -exec chown redis: '{}' +
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
