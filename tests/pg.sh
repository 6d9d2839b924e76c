#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for the tests: tests/pg.sh start DIR | stop DIR | dsn DIR
#
#   start  initdb DIR/data and start the server, listening only on a Unix
#          socket in DIR (no TCP port, so it never clashes with anything);
#          creates the database "scimgate"; prints the DSN.
#   dsn    prints the DSN the cluster in DIR has (DIR: an absolute path).
#   stop   stops the server and removes DIR.
#
# As root the cluster runs as the unprivileged "postgres" user (initdb
# refuses root), under runuser; otherwise as the calling user. The binaries
# are Debian's, in /usr/lib/postgresql/15/bin (PG_BIN overrides).
set -euo pipefail
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: tests/pg.sh start|stop|dsn DIR" >&2; exit 2; }
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
port=5432

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
owner() { if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi; }
dsn() { echo "host=$dir port=$port dbname=scimgate user=$(owner)"; }

case "$cmd" in
start)
  [ -x "$bin/initdb" ] || { echo "tests/pg.sh: no PostgreSQL in $bin (apt-get install postgresql-15)" >&2; exit 1; }
  if [ -e "$dir/data/postmaster.pid" ]; then "$0" stop "$dir"; fi
  rm -rf "$dir"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  # The server runs as postgres when we are root: it must reach DIR (put
  # DIR under /tmp, not under a private home directory).
  [ "$(id -u)" -ne 0 ] || chown postgres "$dir"
  as_owner "$bin/initdb" -D "$dir/data" --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
    --username="$(owner)" >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  # Test settings: no TCP, the socket here; fsync kept on (the tests kill
  # gateways, not the database); enough connections for two nodes' workers.
  cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
max_connections = 300
shared_buffers = 64MB
EOF
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  as_owner "$bin/createdb" -h "$dir" -p "$port" scimgate
  dsn
  ;;
dsn)
  dsn
  ;;
stop)
  if [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: tests/pg.sh start|stop|dsn DIR" >&2
  exit 2
  ;;
esac
