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

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

export CARGO_PROFILE_DEV_DEBUG=line-tables-only
cargo fmt --all -- --check
cargo nextest run --workspace --profile ci "$@"
