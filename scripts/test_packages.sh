#!/usr/bin/env bash
# Debian packages the tests use beside PostgreSQL and docker: a real PgBouncer for the pooler tests, an sshd that
# the SSH deploy test starts on loopback with a configuration of its own, and Graphviz for status.yml's picture.
# Idempotent and quiet when everything is there; never starts the packages' services.
set -euo pipefail

missing=()
[[ -x /usr/sbin/pgbouncer ]] || missing+=(pgbouncer)
[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
[[ -x /usr/bin/dot ]] || missing+=(graphviz)
((${#missing[@]} == 0)) && exit 0

[[ $(id -u) -eq 0 ]] || { echo "test_packages: installing ${missing[*]} needs root" >&2; exit 1; }
# a package's init script must not start a system-wide service on a test machine
policy=/usr/sbin/policy-rc.d
created_policy=""
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod 0755 "$policy"
  created_policy=1
fi
trap '[[ -z $created_policy ]] || rm -f "$policy"' EXIT

install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
echo "test_packages: installing ${missing[*]}"
install 2>/dev/null || { apt-get update -qq && install; }
