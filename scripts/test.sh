#!/usr/bin/env bash
# Runs every test: checks formatting, brings up the test environment
# (scripts/test-env.sh), then runs the unit tests and the end-to-end tests
# against the real API server, PostgreSQL and MariaDB. Extra arguments go to
# `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo fmt --all --check
eval "$(bash scripts/test-env.sh)"
cargo test --workspace --locked "$@"
