#!/bin/bash
# The postgres:17 stand-in's entrypoint, after the official image's contract:
# - as root: own PGDATA and the socket directory, then re-run as the postgres user;
# - first start (no PG_VERSION): initdb with POSTGRES_USER and POSTGRES_PASSWORD
#   (required, like the official image, unless POSTGRES_HOST_AUTH_METHOD=trust), then a
#   socket-only server creates POSTGRES_DB and runs /docker-entrypoint-initdb.d/*.sql|*.sh,
#   so nothing reaches it over TCP before it is initialised;
# - then exec postgres listening on every address, password (scram-sha-256) over TCP.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA"
  chown postgres:postgres "$PGDATA"
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  : "${POSTGRES_USER:=postgres}"
  : "${POSTGRES_DB:=$POSTGRES_USER}"
  auth="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo >&2 'Error: Database is uninitialized and superuser password is not specified.'
    echo >&2 '       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.'
    exit 1
  fi
  pwfile=$(mktemp)
  printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
    --auth-host="$auth" --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf 'host all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -p 5432" start >/dev/null
  psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres)
  if [ "$POSTGRES_DB" != postgres ]; then
    exists=$("${psql[@]}" -tA --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db'")
    if [ -z "$exists" ]; then
      "${psql[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db"' >/dev/null
    fi
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh) echo "running $f"; . "$f" ;;
      *.sql) echo "running $f"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
      *) ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo 'PostgreSQL init process complete; ready for start up.'
fi

if [ "$1" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
