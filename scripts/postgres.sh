#!/usr/bin/env bash
# A private PostgreSQL server for tests and benchmarks (the postgres sink), no Docker:
#   scripts/postgres.sh up      fresh cluster on 127.0.0.1:$PG_PORT, prints its DSN
#   scripts/postgres.sh down    stops that server (by the PID it recorded)
#   scripts/postgres.sh status  running or not
# PG_PORT defaults to 15432; state lives in .cache/pg-$PG_PORT (`down` keeps only the server log). When initdb/pg_ctl are missing,
# Debian's `postgresql` package is installed with apt-get (as root, or with sudo).
# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT=${PG_PORT:-15432}
STATE=$PWD/.cache/pg-$PORT
USER_NAME=o2c  # superuser of the private cluster; trust auth, 127.0.0.1 only

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bin() {  # Debian keeps initdb/pg_ctl in /usr/lib/postgresql/<version>/bin, off the PATH
  local found
  found=$(command -v initdb 2>/dev/null || true)
  if [ -z "$found" ]; then
    found=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  [ -n "$found" ] && dirname "$found"
}

install_postgres() {
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo -n)
    else
      die "initdb/pg_ctl not found and cannot install Debian's postgresql package: not root and no password-less sudo. Install it (apt-get install postgresql) or set O2C_TEST_POSTGRES_DSN."
    fi
  fi
  command -v apt-get >/dev/null || die "initdb/pg_ctl not found and no apt-get to install PostgreSQL; set O2C_TEST_POSTGRES_DSN."
  echo "postgres.sh: installing Debian's postgresql package" >&2
  "${sudo[@]}" apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends postgresql >&2
}

BIN=$(find_bin || true)

as_owner() {  # run a PostgreSQL tool as the cluster's owner
  if [ "$(id -u)" -eq 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# As root the cluster directory must be reachable by `postgres`; a checkout under /root is not.
cluster_dir() {
  if [ -f "$STATE/cluster" ]; then
    cat "$STATE/cluster"
  elif [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$STATE"; then
    echo "${TMPDIR:-/tmp}/o2c-pg-$PORT"
  else
    echo "$STATE/cluster-data"
  fi
}

running() {
  [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null
}

cmd_down() {
  if [ -f "$STATE/pid" ]; then
    local pid cluster
    pid=$(cat "$STATE/pid")
    cluster=$(cluster_dir)
    if kill -0 "$pid" 2>/dev/null; then
      if ! as_owner "$BIN/pg_ctl" -D "$cluster/data" -m fast -w -t 30 stop >/dev/null; then
        kill "$pid" 2>/dev/null || true  # the postmaster's PID we recorded
      fi
    fi
    rm -f "$STATE/pid"
    cp "$cluster/postgres.log" "$STATE/postgres.log" 2>/dev/null || true
    rm -rf "$cluster"  # the cluster is throw-away; its log stays in $STATE
    echo "postgres.sh: stopped PostgreSQL (pid $pid) on port $PORT"
  fi
}

cmd_up() {
  if [ -z "$BIN" ]; then
    install_postgres
    BIN=$(find_bin) || die "Debian's postgresql package installed, but no initdb found"
  fi
  cmd_down >/dev/null
  local cluster
  mkdir -p "$STATE"
  rm -f "$STATE/cluster"
  cluster=$(cluster_dir)
  rm -rf "$cluster"  # fresh per run
  mkdir -p "$cluster/sock"
  echo "$cluster" >"$STATE/cluster"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres: "$cluster"
  fi
  as_owner "$BIN/initdb" -D "$cluster/data" -U "$USER_NAME" --auth=trust --encoding=UTF8 --no-locale \
    --no-sync >"$STATE/initdb.log" 2>&1 || { cat "$STATE/initdb.log" >&2; die "initdb failed"; }
  if ! as_owner "$BIN/pg_ctl" -D "$cluster/data" -l "$cluster/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $cluster/sock" start >/dev/null; then
    tail -n 20 "$cluster/postgres.log" >&2 || true
    die "PostgreSQL did not start on port $PORT (in use?)"
  fi
  head -n 1 "$cluster/data/postmaster.pid" >"$STATE/pid"
  echo "postgresql://$USER_NAME@127.0.0.1:$PORT/postgres"
}

cmd_status() {
  if running; then
    echo "PostgreSQL running on 127.0.0.1:$PORT (pid $(cat "$STATE/pid"))"
  else
    echo "PostgreSQL not running on port $PORT"
    return 1
  fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) die "usage: scripts/postgres.sh up|down|status  (PG_PORT=$PORT)" ;;
esac
