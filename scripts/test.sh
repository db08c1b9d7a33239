#!/usr/bin/env bash
# The whole test suite (`make test`). Runs the database tests on SQLite always, and on
# PostgreSQL and MySQL/MariaDB when they answer on localhost (or when
# CTISWITCH_TEST_POSTGRES_URL / CTISWITCH_TEST_MYSQL_URL are given).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

pg_default="postgres://postgres@127.0.0.1:5432/postgres"
my_default="mysql://root@127.0.0.1:3306/test"

if [ -z "${CTISWITCH_TEST_POSTGRES_URL:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1 && pg_isready -q -h 127.0.0.1 -p 5432; then
    export CTISWITCH_TEST_POSTGRES_URL="$pg_default"
  else
    echo "test: PostgreSQL not reachable on 127.0.0.1:5432 — PostgreSQL variants will be skipped"
  fi
fi
if [ -z "${CTISWITCH_TEST_MYSQL_URL:-}" ]; then
  if command -v mariadb-admin >/dev/null 2>&1 && mariadb-admin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    export CTISWITCH_TEST_MYSQL_URL="$my_default"
  elif command -v mysqladmin >/dev/null 2>&1 && mysqladmin -h 127.0.0.1 -u root ping >/dev/null 2>&1; then
    export CTISWITCH_TEST_MYSQL_URL="$my_default"
  else
    echo "test: MySQL/MariaDB not reachable on 127.0.0.1:3306 — MySQL variants will be skipped"
  fi
fi
echo "test: postgres=${CTISWITCH_TEST_POSTGRES_URL:-skipped} mysql=${CTISWITCH_TEST_MYSQL_URL:-skipped}"

export CTISWITCH_TEST_PYTHON="$PWD/.venv/bin/python"
# Two cores: keep test binaries from starving the SIP peers they drive.
cargo test --workspace --all-targets -- --test-threads="${TEST_THREADS:-4}"
