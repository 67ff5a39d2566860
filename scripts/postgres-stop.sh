#!/usr/bin/env bash
# Stop the private PostgreSQL cluster started by scripts/postgres.sh.
#
# Usage: scripts/postgres-stop.sh [DIR] [--drop]
#   DIR     the folder given to postgres.sh (default: $MENTATLAB_PG_DIR, else /tmp/mentatlab-pg)
#   --drop  also delete the cluster and DIR
# Idempotent: a cluster that is not running (or does not exist) is not an error.
set -euo pipefail

DIR="${MENTATLAB_PG_DIR:-/tmp/mentatlab-pg}"
DROP=0
for arg in "$@"; do
  case "$arg" in
    --drop) DROP=1 ;;
    *) DIR="$arg" ;;
  esac
done
NAME=mentatlab
[ -d "$DIR" ] || exit 0
DIR="$(cd "$DIR" && pwd)"
export PG_CLUSTER_CONF_ROOT="$DIR/etc"
for conf in "$DIR"/etc/*/"$NAME"/postgresql.conf; do
  [ -f "$conf" ] || continue
  VERSION="$(basename "$(dirname "$(dirname "$conf")")")"
  if pg_ctlcluster "$VERSION" "$NAME" status >/dev/null 2>&1; then
    pg_ctlcluster "$VERSION" "$NAME" stop -m fast >&2
  fi
  if [ "$DROP" = 1 ]; then
    pg_dropcluster "$VERSION" "$NAME" >&2 || true
  fi
done
if [ "$DROP" = 1 ]; then
  rm -rf "$DIR"
fi
