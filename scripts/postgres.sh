#!/usr/bin/env bash
# Start a private PostgreSQL cluster for MentatLab's control store (tests, local scale-out).
#
# Usage: scripts/postgres.sh [DIR]
#   DIR  folder holding the cluster's config, data, socket and log
#        (default: $MENTATLAB_PG_DIR, else /tmp/mentatlab-pg). Its parents must be
#        traversable by the postgres user.
#
# Idempotent: installs PostgreSQL with apt-get when missing (needs root), creates the
# cluster on first use (127.0.0.1 only, a free port, password auth over TCP), starts it if
# stopped, creates the role and database "mentatlab", and prints the SQLAlchemy URL
# (postgresql+psycopg://mentatlab:<password>@127.0.0.1:<port>/mentatlab) on stdout.
# Everything else goes to stderr. Stop with scripts/postgres-stop.sh [DIR] [--drop].
set -euo pipefail

DIR="${1:-${MENTATLAB_PG_DIR:-/tmp/mentatlab-pg}}"
NAME=mentatlab
log() { echo "postgres.sh: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "run as root (pg_createcluster/pg_ctlcluster switch to the postgres user)"; exit 1
fi
if ! command -v pg_createcluster >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  log "installing PostgreSQL (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
    || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
fi
VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
export PG_CLUSTER_CONF_ROOT="$DIR/etc"
mkdir -p "$DIR/etc" "$DIR/run" "$DIR/log"
chown postgres:postgres "$DIR/run" "$DIR/log"
chmod 755 "$DIR"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ ! -f "$DIR/etc/$VERSION/$NAME/postgresql.conf" ]; then
  PORT="$(free_port)"
  log "creating PostgreSQL $VERSION cluster in $DIR on 127.0.0.1:$PORT"
  pg_createcluster "$VERSION" "$NAME" -d "$DIR/data" -p "$PORT" -s "$DIR/run" \
    -l "$DIR/log/pg.log" -- --auth-local=trust --auth-host=scram-sha-256 >&2
  cat > "$DIR/etc/$VERSION/$NAME/conf.d/mentatlab.conf" <<CONF
listen_addresses = '127.0.0.1'
fsync = on
CONF
  python3 -c 'import secrets; print(secrets.token_urlsafe(18))' > "$DIR/password"
  chmod 600 "$DIR/password"
fi
PORT="$(sed -n 's/^port *= *\([0-9]*\).*/\1/p' "$DIR/etc/$VERSION/$NAME/postgresql.conf" | head -n 1)"
PASSWORD="$(cat "$DIR/password")"

if ! pg_ctlcluster "$VERSION" "$NAME" status >/dev/null 2>&1; then
  if ! pg_ctlcluster "$VERSION" "$NAME" start >&2; then
    # The port was taken since the cluster was created: move to a free one and retry.
    PORT="$(free_port)"
    log "start failed; retrying on port $PORT"
    sed -i "s/^port *= *[0-9]*/port = $PORT/" "$DIR/etc/$VERSION/$NAME/postgresql.conf"
    pg_ctlcluster "$VERSION" "$NAME" start >&2
  fi
fi

psql_local() {
  su postgres -s /bin/sh -c "psql -X -q -v ON_ERROR_STOP=1 -h '$DIR/run' -p '$PORT' -d postgres $*"
}
psql_local "-tAc \"SELECT 1 FROM pg_roles WHERE rolname = '$NAME'\"" | grep -q 1 \
  || psql_local "-c \"CREATE ROLE $NAME LOGIN PASSWORD '$PASSWORD'\""
# tests make a fresh database per scenario (e.g. several nodes migrating one new database)
psql_local "-c \"ALTER ROLE $NAME CREATEDB\""
psql_local "-tAc \"SELECT 1 FROM pg_database WHERE datname = '$NAME'\"" | grep -q 1 \
  || psql_local "-c \"CREATE DATABASE $NAME OWNER $NAME\""

echo "postgresql+psycopg://$NAME:$PASSWORD@127.0.0.1:$PORT/$NAME"
