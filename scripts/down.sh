#!/usr/bin/env bash
# Stops what scripts/up.sh started (the databases keep running: they are the
# machine's own services). `--purge` also deletes the control plane's state.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
state=$PWD/.dbfleet
for pidfile in "$state"/*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
    fi
    rm -f "$pidfile"
done
if [ "${1:-}" = --purge ]; then
    rm -rf "$state"
    echo "removed $state"
fi
