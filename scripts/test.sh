#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs what the tests
# need when it is missing, starts the services they use, runs every test once with
# cargo-nextest (one process per test, one shared build), and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    echo "test.sh: apt-get update" >&2
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  echo "test.sh: installing $*" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

stop_actions=()
cleanup() {
  for action in "${stop_actions[@]}"; do
    eval "$action" || true
  done
}
trap cleanup EXIT

# PDF tools: the renderer's tests read the PDFs back with poppler.
command -v pdftotext >/dev/null && command -v pdfinfo >/dev/null || apt_install poppler-utils

# A real Prometheus evaluates every dashboard and alert expression; promtool checks them.
command -v prometheus >/dev/null && command -v promtool >/dev/null || apt_install prometheus

# systemd-analyze verifies the shipped unit and scores its hardening.
command -v systemd-analyze >/dev/null || apt_install systemd

# PostgreSQL: the store, queue and daemon suites run on it as well as on SQLite. Each test
# creates its own scratch database; they are dropped at the end.
pg_url="${ERPSYNC_TEST_PG_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_ctlcluster >/dev/null; then
  apt_install postgresql postgresql-client
fi
if ! pg_ready; then
  cluster_version=$(ls /etc/postgresql | sort -V | tail -n1)
  echo "test.sh: starting PostgreSQL $cluster_version" >&2
  pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start
  stop_actions+=("pg_ctlcluster --skip-systemctl-redirect $cluster_version main stop")
  for _ in $(seq 1 50); do pg_ready && break; sleep 0.2; done
  # A fresh Debian cluster authenticates TCP clients by password: give the tests one.
  runuser -u postgres -- psql -q -c "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
fi
export ERPSYNC_TEST_PG_URL="$pg_url"
drop_test_databases() {
  psql "$pg_url" -At -c "SELECT datname FROM pg_database WHERE datname LIKE 'erpsync_t_%'" 2>/dev/null |
    while read -r db; do psql "$pg_url" -q -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
}
stop_actions+=(drop_test_databases)

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

export CARGO_PROFILE_DEV_DEBUG=line-tables-only
cargo fmt --all -- --check
cargo nextest run --workspace --profile ci "$@"
