#!/usr/bin/env bash
# Make sure PostgreSQL and Redis answer on 127.0.0.1 and the project database exists.
# Starts installed-but-stopped services; installs them from the OS packages when missing and
# allowed (root with apt-get, or ALLOW_SERVICE_INSTALL=1). Never touches a running service.
set -euo pipefail
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
DBNAME=${AUTOTRADER_DB:-autotrader}
can_install() {
  [ "${ALLOW_SERVICE_INSTALL:-auto}" = 1 ] && return 0
  [ "${ALLOW_SERVICE_INSTALL:-auto}" = auto ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null
}
wait_for() { for _ in $(seq 1 60); do if eval "$1" >/dev/null 2>&1; then return 0; fi; sleep 0.5; done; return 1; }

if ! command -v pg_ctlcluster >/dev/null && ! command -v pg_isready >/dev/null; then
  if can_install; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null;
  else echo "PostgreSQL is not installed (set ALLOW_SERVICE_INSTALL=1 as root to install it)" >&2; exit 1; fi
fi
if ! pg_isready -h "$PGHOST" -p "$PGPORT" >/dev/null 2>&1; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  wait_for "pg_isready -h $PGHOST -p $PGPORT" || { echo "PostgreSQL did not come up" >&2; exit 1; }
fi

if ! command -v redis-server >/dev/null; then
  if can_install; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null;
  else echo "Redis is not installed (set ALLOW_SERVICE_INSTALL=1 as root to install it)" >&2; exit 1; fi
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for "redis-cli -h 127.0.0.1 -p 6379 ping" || { echo "Redis did not come up" >&2; exit 1; }
fi

if ! psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='$DBNAME'" | grep -q 1; then
  createdb -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" "$DBNAME"
  echo "created database $DBNAME"
fi
echo "services: PostgreSQL and Redis are up"
