#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use answer: start the local
# ones if they are installed and stopped, install them if they are missing.
set -euo pipefail

PGHOST=127.0.0.1
PGPORT=5432
REDIS_PORT=6379

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "cannot install $* (need root and apt-get)" >&2; return 1
  fi
}

if ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL"; apt_install postgresql
  fi
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL does not answer on $PGHOST:$PGPORT" >&2; exit 1; }
fi

if ! redis_up; then
  command -v redis-server >/dev/null || { echo "installing Redis"; apt_install redis-server; }
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  redis_up || { echo "Redis does not answer on 127.0.0.1:$REDIS_PORT" >&2; exit 1; }
fi
# The browser tests drive Debian's Chromium (Playwright cannot download its own build here).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Chromium"; apt_install chromium
fi
echo "PostgreSQL and Redis answer; Chromium at /usr/bin/chromium"
