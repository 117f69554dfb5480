#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine or a developer's: installs what the tests
# need when it is missing, starts the services they use, runs every test once with
# cargo-nextest (one process per test, one shared build) after rustfmt and clippy, and
# stops what it started.
#
# schemathesis (PyPI, 4.x) is installed into $ERPSYNC_TEST_PREFIX/venv when missing and
# found by the tests through ERPSYNC_SCHEMATHESIS.
#
# SQS-compatible servers: fauxqs (npm fauxqs@2.4.1, which needs Node >= 22.5: the npm
# package node@22 provides it next to an older system Node) and moto_server (PyPI
# moto[server]). Both are installed under $ERPSYNC_TEST_PREFIX (default
# /opt/erpsync-test) when missing, started on free loopback ports, and stopped on exit;
# the tests find them through FAUXQS_URL and MOTO_URL. Set
# those variables yourself to use servers you started.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${ERPSYNC_TEST_PREFIX:-/opt/erpsync-test}"
fauxqs_version="2.4.1"

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

# A free loopback TCP port.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Waits until something listens on 127.0.0.1:$2, or fails naming $1 and its log $3.
wait_listening() {
  local name=$1 port=$2 log=$3
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "test.sh: $name did not start on port $port; its log:" >&2
  cat "$log" >&2
  exit 1
}

node22="$prefix/node_modules/node/bin/node"
fauxqs_cli="$prefix/node_modules/fauxqs/dist/cli.js"

start_fauxqs() {
  command -v npm >/dev/null || apt_install npm
  if ! [ -x "$node22" ] || ! "$node22" -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)' \
    || ! grep -q "\"version\": \"$fauxqs_version\"" "$prefix/node_modules/fauxqs/package.json" 2>/dev/null; then
    echo "test.sh: installing node@22 and fauxqs@$fauxqs_version under $prefix" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --silent "node@22" "fauxqs@$fauxqs_version" >/dev/null
  fi
  # The node package fetches its binary in a preinstall script; npm may not run it.
  if ! [ -x "$node22" ]; then
    (cd "$prefix/node_modules/node" && node installArchSpecificPackage)
  fi
  local port log
  port=$(free_port)
  log=$(mktemp -t fauxqs.XXXXXX.log)
  FAUXQS_PORT=$port FAUXQS_HOST=127.0.0.1 FAUXQS_LOGGER=false "$node22" "$fauxqs_cli" >"$log" 2>&1 &
  local pid=$!
  stop_actions+=("kill $pid")
  wait_listening fauxqs "$port" "$log"
  export FAUXQS_URL="http://127.0.0.1:$port"
  echo "test.sh: fauxqs $fauxqs_version on $FAUXQS_URL" >&2
}

moto_bin="$prefix/venv/bin/moto_server"

start_moto() {
  if ! [ -x "$moto_bin" ] && command -v moto_server >/dev/null && moto_server --help >/dev/null 2>&1; then
    moto_bin=$(command -v moto_server)
  fi
  if ! [ -x "$moto_bin" ]; then
    echo "test.sh: installing moto[server] under $prefix/venv" >&2
    python3 -m venv "$prefix/venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$prefix/venv"; }
    "$prefix/venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
  fi
  local port log
  port=$(free_port)
  log=$(mktemp -t moto.XXXXXX.log)
  "$moto_bin" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  local pid=$!
  stop_actions+=("kill $pid")
  wait_listening moto_server "$port" "$log"
  export MOTO_URL="http://127.0.0.1:$port"
  echo "test.sh: moto_server on $MOTO_URL" >&2
}

# A second moto_server that checks every request's SigV4 signature against its IAM users
# (after the first four requests, which the test uses to create one): the emulators
# above accept any signature.
start_moto_auth() {
  local port log
  port=$(free_port)
  log=$(mktemp -t moto-auth.XXXXXX.log)
  INITIAL_NO_AUTH_ACTION_COUNT=4 "$moto_bin" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  local pid=$!
  stop_actions+=("kill $pid")
  wait_listening "moto_server (signature checks)" "$port" "$log"
  export MOTO_AUTH_URL="http://127.0.0.1:$port"
  echo "test.sh: moto_server checking signatures on $MOTO_AUTH_URL" >&2
}

# The webhook tests verify every delivery with the `standardwebhooks` package (PyPI), an
# implementation independent of erpsync's, in a receiver they start (tests/webhook_receiver.py).
webhook_python="$prefix/venv/bin/python"
if ! "$webhook_python" -c 'import standardwebhooks' 2>/dev/null; then
  echo "test.sh: installing standardwebhooks under $prefix/venv" >&2
  [ -x "$webhook_python" ] || python3 -m venv "$prefix/venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$prefix/venv"; }
  "$prefix/venv/bin/pip" install --quiet --disable-pip-version-check standardwebhooks
fi

# schemathesis (PyPI) generates requests from the OpenAPI document against a live daemon
# (tests/openapi.rs); it lives in the same venv as moto.
schemathesis_bin="$prefix/venv/bin/schemathesis"
if ! [ -x "$schemathesis_bin" ]; then
  echo "test.sh: installing schemathesis under $prefix/venv" >&2
  [ -x "$prefix/venv/bin/pip" ] || python3 -m venv "$prefix/venv" 2>/dev/null \
    || { apt_install python3-venv && python3 -m venv "$prefix/venv"; }
  "$prefix/venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5'
fi
export ERPSYNC_SCHEMATHESIS="$schemathesis_bin"

[ -n "${FAUXQS_URL:-}" ] || start_fauxqs
[ -n "${MOTO_URL:-}" ] || start_moto
[ -n "${MOTO_AUTH_URL:-}" ] || start_moto_auth

# The emulators accept any credentials; the SDK's standard chain finds these.
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_REGION="${AWS_REGION:-us-east-1}"
# Keep the SDK from looking for instance metadata on a developer's machine.
export AWS_EC2_METADATA_DISABLED=true

export CARGO_PROFILE_DEV_DEBUG=line-tables-only
cargo fmt --all -- --check
# Lints run on the same dev profile as the tests, so the dependencies are checked once.
cargo clippy --workspace --all-targets -- -D warnings
cargo nextest run --workspace --profile ci "$@"
