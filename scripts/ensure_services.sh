#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use answer (and nginx, PgBouncer are installed): start the local
# ones if they are installed and stopped, install them if they are missing,
# and leave a PostgreSQL role and database the tests can log in with.
#
#   scripts/ensure_services.sh [postgres] [redis] [chromium] [nginx] [pgbouncer]   (no argument: all)
#
# Environment (the defaults match the Makefile's TEST_DATABASE_URL):
#   QW_PG_HOST, QW_PG_PORT        PostgreSQL over TCP (127.0.0.1, 5432)
#   QW_DB_USER, QW_DB_PASSWORD    the tests' role (qw, qw-test-only: a test credential, not a secret)
#   QW_DB_NAME                    the role's own database (qw)
#   QW_REDIS_PORT                 Redis on 127.0.0.1 (6379)
set -euo pipefail

PG_HOST="${QW_PG_HOST:-127.0.0.1}"
PG_PORT="${QW_PG_PORT:-5432}"
DB_USER="${QW_DB_USER:-qw}"
DB_PASSWORD="${QW_DB_PASSWORD:-qw-test-only}"
DB_NAME="${QW_DB_NAME:-qw}"
REDIS_PORT="${QW_REDIS_PORT:-6379}"

pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "cannot install $* (need root and apt-get)" >&2; return 1
  fi
}

ensure_postgres_running() {
  pg_up && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL"; apt_install postgresql
  fi
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { echo "PostgreSQL does not answer on $PG_HOST:$PG_PORT" >&2; exit 1; }
}

# The tests log in over TCP as DB_USER with a password and create and drop
# their test databases (CREATEDB). A fresh Debian cluster asks TCP logins for
# a scram password and lets the postgres role in only over the local socket as
# the postgres OS user (peer); a password role works under both that and trust.
test_role_works() {
  PGPASSWORD="$DB_PASSWORD" psql -X -w -h "$PG_HOST" -p "$PG_PORT" -U "$DB_USER" -d "$DB_NAME" \
    -Atc "SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user" 2>/dev/null | grep -qx t
}

psql_as_superuser() {
  if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
    # peer over the local socket; cd: psql as postgres cannot read root's cwd
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@")
  else
    psql -X -q -w -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U postgres "$@"
  fi
}

ensure_test_role() {
  test_role_works && return 0
  echo "creating PostgreSQL role $DB_USER (CREATEDB) and database $DB_NAME"
  if ! psql_as_superuser -d postgres -v user="$DB_USER" -v password="$DB_PASSWORD" -v db="$DB_NAME" <<'SQL'
SELECT format('CREATE ROLE %I', :'user') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'user', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL
  then
    echo "cannot create the role: run this as root, or as a PostgreSQL superuser create role" \
      "$DB_USER LOGIN CREATEDB PASSWORD '...' and database $DB_NAME owned by it" >&2
    exit 1
  fi
  test_role_works || { echo "role $DB_USER cannot log in on $PG_HOST:$PG_PORT" >&2; exit 1; }
}

ensure_redis() {
  redis_up && return 0
  command -v redis-server >/dev/null || { echo "installing Redis"; apt_install redis-server; }
  echo "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no
  for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  redis_up || { echo "Redis does not answer on 127.0.0.1:$REDIS_PORT" >&2; exit 1; }
}

# The browser tests drive Debian's Chromium (Playwright cannot download its own build here).
ensure_chromium() {
  [ -x /usr/bin/chromium ] && return 0
  echo "installing Chromium"; apt_install chromium
}

# The client's lint (Biome) and node tests: node 18+ with npm.
ensure_node() {
  command -v npm >/dev/null && command -v node >/dev/null && return 0
  echo "installing node and npm"; apt_install nodejs npm
}


# The deployment tests run their own nginx and PgBouncer as child processes
# (policy-rc.d or not, the system services are never needed).
ensure_nginx() {
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "installing nginx"; apt_install nginx; }
}
ensure_pgbouncer() {
  command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || { echo "installing PgBouncer"; apt_install pgbouncer; }
}

[ $# -gt 0 ] || set -- postgres redis chromium node nginx pgbouncer
for service in "$@"; do
  case "$service" in
    postgres) ensure_postgres_running; ensure_test_role
      echo "PostgreSQL answers on $PG_HOST:$PG_PORT; role $DB_USER logs in" ;;
    redis) ensure_redis; echo "Redis answers on 127.0.0.1:$REDIS_PORT" ;;
    chromium) ensure_chromium; echo "Chromium at /usr/bin/chromium" ;;
    node) ensure_node; echo "node $(node --version)" ;;
    nginx) ensure_nginx; echo "nginx installed (run by the tests and make cluster themselves)" ;;
    pgbouncer) ensure_pgbouncer; echo "PgBouncer installed (run by the tests themselves)" ;;
    *) echo "unknown service $service (postgres, redis, chromium, node, nginx, pgbouncer)" >&2; exit 2 ;;
  esac
done
