#!/usr/bin/env bash
# Runs every test: checks formatting, brings up the test environment
# (scripts/test-env.sh) and the Python tools of the contract tests
# (scripts/python-tools.sh), runs the unit tests and the end-to-end tests
# against the real API server, PostgreSQL and MariaDB, then brings the
# local stack up and down the way a new user does (scripts/stack-test.sh).
# Extra arguments go to `cargo test` and skip the stack test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cargo fmt --all --check
eval "$(bash scripts/test-env.sh)"
# schemathesis, openapi-spec-validator and openapi-python-client for the
# contract tests (tests/contract); fails, saying why, if they cannot be had.
eval "$(bash scripts/python-tools.sh)"
# The benchmarks are run by hand (docs/benchmarks.md), but they must keep
# compiling against the code they measure.
cargo test --workspace --locked --benches --no-run
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked "$@" 2>&1 | tee "$log"
stack=0
if [ $# -eq 0 ]; then
    bash scripts/stack-test.sh
    stack=1
fi
# One closing line for the whole run (the cargo binaries' own closing lines
# come before the stack test, and the last of them counts only doc tests).
awk -v stack="$stack" '/^test result:/ { passed += $4; failed += $6 }
    END { printf "all: %d passed, %d failed\n", passed + stack, failed }' "$log"
