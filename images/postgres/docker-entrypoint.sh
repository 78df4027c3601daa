#!/usr/bin/env bash
# Entrypoint of the local postgres stand-in: the subset of the official image's interface we rely on.
# POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB (each also as *_FILE), POSTGRES_HOST_AUTH_METHOD,
# POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR, /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz.
set -Eeo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# VAR or VAR_FILE (docker secrets), never both.
file_env() {
  local var="$1" def="${2:-}" file_var="${1}_FILE" val
  if [[ -n ${!var:-} && -n ${!file_var:-} ]]; then
    die "both $var and $file_var are set (but are exclusive)"
  fi
  val="$def"
  if [[ -n ${!var:-} ]]; then
    val="${!var}"
  elif [[ -n ${!file_var:-} ]]; then
    val="$(<"${!file_var}")"
  fi
  export "$var"="$val"
  unset "$file_var"
}

setup_env() {
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  : "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
  export POSTGRES_HOST_AUTH_METHOD
}

create_dirs() {
  mkdir -p "$PGDATA" /var/run/postgresql
  chmod 00700 "$PGDATA" || :
  chmod 03775 /var/run/postgresql || :
  if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
    mkdir -p "$POSTGRES_INITDB_WALDIR"
  fi
  if [[ $(id -u) == 0 ]]; then
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql ${POSTGRES_INITDB_WALDIR:+"$POSTGRES_INITDB_WALDIR"}
  fi
}

verify_minimum_env() {
  if [[ -z $POSTGRES_PASSWORD && $POSTGRES_HOST_AUTH_METHOD != trust ]]; then
    die "Database is uninitialized and superuser password is not specified.
       Set POSTGRES_PASSWORD to a non-empty value for the superuser, or
       POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password (not recommended)."
  fi
}

init_database_dir() {
  local -a args=(
    --username="$POSTGRES_USER"
    --encoding=UTF8
    --locale=C.UTF-8
    # Stricter than the official image (which trusts loopback TCP): every TCP login needs the password.
    --auth-local=trust
    --auth-host="$POSTGRES_HOST_AUTH_METHOD"
  )
  if [[ -n ${POSTGRES_INITDB_WALDIR:-} ]]; then
    args+=(--waldir="$POSTGRES_INITDB_WALDIR")
  fi
  # --pwfile refuses an empty file, hence the newline; word splitting of INITDB_ARGS is intended.
  # shellcheck disable=SC2086
  initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") $POSTGRES_INITDB_ARGS
  printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
}

temp_server_start() {
  # Socket only, so nothing outside sees a half-initialised database.
  PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
}

temp_server_stop() {
  PGUSER="$POSTGRES_USER" pg_ctl -D "$PGDATA" -m fast -w stop
}

psql_init() {
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc "$@"
}

setup_db() {
  local exists
  exists="$(psql_init --dbname postgres -tA --set db="$POSTGRES_DB" \
    <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")"
  if [[ -z $exists ]]; then
    psql_init --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
}

process_init_files() {
  local f
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e $f ]] || continue
    case "$f" in
      *.sh)
        if [[ -x $f ]]; then
          log "running $f"; "$f"
        else
          log "sourcing $f"
          # shellcheck disable=SC1090
          . "$f"
        fi
        ;;
      *.sql) log "running $f"; psql_init --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sql.gz) log "running $f"; gunzip -c "$f" | psql_init --dbname "$POSTGRES_DB" ;;
      *) log "ignoring $f" ;;
    esac
  done
}

main() {
  # Official behaviour: "docker run image -c foo=bar" means "postgres -c foo=bar".
  if [[ ${1:-} == -* ]]; then
    set -- postgres "$@"
  fi
  if [[ ${1:-} != postgres ]]; then
    exec "$@"
  fi

  setup_env
  create_dirs
  if [[ $(id -u) == 0 ]]; then
    # Re-run as postgres; exec keeps this process PID 1 so docker stop signals postgres itself.
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
  fi

  if [[ ! -s $PGDATA/PG_VERSION ]]; then
    verify_minimum_env
    log "initialising database in $PGDATA"
    init_database_dir
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    temp_server_start
    setup_db
    process_init_files
    temp_server_stop
    unset PGPASSWORD
    log "PostgreSQL init process complete; ready for start up."
  else
    log "PostgreSQL Database directory appears to contain a database; Skipping initialization"
  fi
  exec "$@"
}

main "$@"
