#!/usr/bin/env bash
# No secret shows: the database password (also given in connect_params), an SSL key's passphrase (connect_params
# sslpassword) and a password in runner_env; not at -vvv, not in any process's argv while the modules run.
set -eu

python=${ANSIBLE_TEST_PYTHON_INTERPRETER:-python3}
cluster=$("$python" ../setup_postgresql/files/pg_cluster.py start)
field() { "$python" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$cluster" "$1"; }
# handed over the way AWX credentials are: in the environment
PGHOST=$(field host) PGPORT=$(field port) PGUSER=$(field user) PGPASSWORD=$(field password)
export PGHOST PGPORT PGUSER PGPASSWORD
wrong_password=wrong-$RANDOM-password
ssl_secret=ssl-$RANDOM-passphrase
url_secret=url-$RANDOM-password

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

printf '{"backup_dest": "%s", "wrong_password": "%s", "ssl_secret": "%s", "url_secret": "%s"}' \
  "$workdir" "$wrong_password" "$ssl_secret" "$url_secret" > "$workdir/vars.json"
ansible-playbook -vvv -i ../../inventory playbook.yml -e "@$workdir/vars.json" > "$workdir/output.log" 2>&1 &
playbook=$!
while kill -0 "$playbook" 2>/dev/null; do
  ps -eww -o args= >> "$workdir/ps.log"
  sleep 0.05
done
wait "$playbook" || { cat "$workdir/output.log"; exit 1; }

grep -q "PLAY RECAP" "$workdir/output.log"
grep -q "pg_dump" "$workdir/ps.log" || { echo "the process sampler never saw pg_dump running"; exit 1; }
for secret in "$PGPASSWORD" "$wrong_password" "$ssl_secret" "$url_secret"; do
  for log in output.log ps.log; do
    if grep -qF -- "$secret" "$workdir/$log"; then
      echo "a secret appears in $log"
      exit 1
    fi
  done
done
# the invocation masks the secrets of connect_params and runner_env and shows their other settings
for shown in '"connect_timeout": 7' '"sslpassword": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"' '"APP_VERSION": "1"' \
  '"DATABASE_URL": "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"'; do
  grep -qF -- "$shown" "$workdir/output.log" || { echo "the -vvv output lacks $shown"; exit 1; }
done
echo "no secret in $(wc -l < "$workdir/output.log") lines of -vvv output nor in $(wc -l < "$workdir/ps.log") process lines"
