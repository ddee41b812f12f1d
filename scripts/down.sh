#!/usr/bin/env bash
# Stops what scripts/up.sh started and waits until it is gone (the databases
# keep running: they are the machine's own services). `--purge` also deletes
# the state: the control plane's data, logs, kubeconfig and token.
# DBFLEET_STATE_DIR names the stack, as for scripts/up.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
state=${DBFLEET_STATE_DIR:-$PWD/.dbfleet}
# dbfleet first, so it releases its Lease while the API server still answers.
for pidfile in "$state/dbfleet.pid" "$state/control-plane.pid"; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        # dbfleet exits within 10 s of SIGTERM; the control plane at once.
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$(basename "$pidfile" .pid) (pid $pid) ignored SIGTERM for 15 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "stopped $(basename "$pidfile" .pid) (pid $pid)"
    fi
    rm -f "$pidfile"
done
if [ "${1:-}" = --purge ]; then
    rm -rf "$state"
    echo "removed $state"
fi
