#!/usr/bin/env bash
# The first five minutes, as a test: scripts/up.sh from a state dir that does
# not exist yet, every example instance meant to be reachable Ready, up.sh
# again over the running stack, then scripts/down.sh --purge leaving nothing
# behind. Runs on ports and a state dir of its own, beside any stack a
# developer has running. scripts/test.sh runs it after the cargo tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf '[stack-test] %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A loopback port nothing listens on.
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 30000))
        listening "$port" || { echo "$port"; return; }
    done
    fail "no free port found"
}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/dbfleet-stack-test.XXXXXX")
export DBFLEET_STATE_DIR=$scratch/state
export DBFLEET_API_SERVER_PORT DBFLEET_FACADE_PORT DBFLEET_METRICS_PORT
DBFLEET_API_SERVER_PORT=$(free_port)
DBFLEET_FACADE_PORT=$(free_port)
DBFLEET_METRICS_PORT=$(free_port)
# Whatever happens, nothing this test started outlives it.
trap 'bash scripts/down.sh --purge >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT

kubectl() { "$DBFLEET_STATE_DIR/bin/kubectl" --kubeconfig "$DBFLEET_STATE_DIR/kubeconfig" -n dbfleet-demo "$@"; }

# Every active instance Ready (phase and condition), every inactive one
# Inactive: the examples all work on the local stack.
check_examples() {
    local rows row name active phase ready bad=
    rows=$(kubectl get dbi -o jsonpath='{range .items[*]}{.metadata.name},{.spec.isActive},{.status.phase},{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')
    [ "$(printf '%s\n' "$rows" | grep -c .)" -ge 4 ] || fail "expected the 4 example instances, got: $rows"
    while IFS=, read -r name active phase ready; do
        [ -n "$name" ] || continue
        if [ "$active" = false ]; then
            [ "$phase" = Inactive ] || bad+=" $name(phase=$phase, want Inactive)"
        elif [ "$phase" != Ready ] || [ "$ready" != True ]; then
            bad+=" $name(phase=$phase, Ready=$ready)"
        fi
    done <<<"$rows"
    if [ -n "$bad" ]; then
        kubectl get dbi -o wide >&2 || true
        tail -n 40 "$DBFLEET_STATE_DIR/dbfleet.log" >&2 || true
        fail "$1: not as expected:$bad"
    fi
    [ "$(kubectl get secret pg-ca -o jsonpath='{.metadata.labels.dbfleet\.io/ca}')" = true ] ||
        fail "$1: the pg-ca Secret up.sh applied lacks the label dbfleet.io/ca=true"
    log "$1: every active example instance is Ready, the inactive one Inactive"
}

started=$SECONDS
log "up.sh from a clean state dir ($DBFLEET_STATE_DIR; API server :$DBFLEET_API_SERVER_PORT, façade :$DBFLEET_FACADE_PORT)"
bash scripts/up.sh >/dev/null
check_examples "first run"

log "up.sh again over the running stack"
bash scripts/up.sh >/dev/null
check_examples "second run"

log "down.sh --purge"
pids=$(cat "$DBFLEET_STATE_DIR"/*.pid)
bash scripts/down.sh --purge >/dev/null
[ ! -e "$DBFLEET_STATE_DIR" ] || fail "down.sh --purge left $DBFLEET_STATE_DIR behind"
for pid in $pids; do
    ! kill -0 "$pid" 2>/dev/null || fail "pid $pid still runs after down.sh"
done
for port in "$DBFLEET_API_SERVER_PORT" "$DBFLEET_FACADE_PORT" "$DBFLEET_METRICS_PORT"; do
    ! listening "$port" || fail "port $port still taken after down.sh"
done
log "passed in $((SECONDS - started)) s"
