#!/usr/bin/env bash
# Runs every test: brings up the test environment (scripts/test-env.sh), then
# the unit tests and the end-to-end tests against the real API server,
# PostgreSQL and MariaDB. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(bash scripts/test-env.sh)"
cargo test --workspace --locked "$@"
