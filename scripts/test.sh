#!/usr/bin/env bash
# Runs every test: checks formatting, brings up the test environment
# (scripts/test-env.sh), runs the unit tests and the end-to-end tests
# against the real API server, PostgreSQL and MariaDB, then brings the
# local stack up and down the way a new user does (scripts/stack-test.sh).
# Extra arguments go to `cargo test` and skip the stack test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo fmt --all --check
eval "$(bash scripts/test-env.sh)"
cargo test --workspace --locked "$@"
if [ $# -eq 0 ]; then
    bash scripts/stack-test.sh
fi
