#!/usr/bin/env bash
# Brings the whole local stack up on this machine, from nothing:
# PostgreSQL and MariaDB, a Kubernetes control plane (etcd + kube-apiserver),
# the dbfleet CRDs, monitoring logins on both databases, the examples, and
# the dbfleet controllers and REST façade probing them.
#
# Everything it starts keeps running in the background; scripts/down.sh stops
# it. Running it again reuses the control plane and restarts dbfleet. It ends
# only once every example instance has been probed, and fails loudly (with
# the end of dbfleet's log) when dbfleet died or probed nothing in time.
#
# Where and on which ports (so a second stack, e.g. the test command's, runs
# beside a developer's):
#   DBFLEET_STATE_DIR        state, logs, kubeconfig, token   (.dbfleet)
#   DBFLEET_API_SERVER_PORT  kube-apiserver                   (6443)
#   DBFLEET_FACADE_PORT      the REST façade                  (8000)
#   DBFLEET_METRICS_PORT     controller /healthz, /metrics    (8080)
#   DBFLEET_UP_TIMEOUT       seconds to wait for the probes   (90)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
state=${DBFLEET_STATE_DIR:-$repo/.dbfleet}
api_port=${DBFLEET_API_SERVER_PORT:-6443}
facade_port=${DBFLEET_FACADE_PORT:-8000}
metrics_port=${DBFLEET_METRICS_PORT:-8080}
namespace=dbfleet-demo
# How long dbfleet may take to probe every example instance.
probe_timeout=${DBFLEET_UP_TIMEOUT:-90}

log() { printf '[up] %s\n' "$*" >&2; }
# Fails loudly: what went wrong, then the end of the log that says why.
fail() {
    log "FAILED: $1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        printf '%s\n' "--- last lines of $2 ---" >&2
        tail -n 40 "$2" >&2
        printf '%s\n' "---" >&2
    fi
    exit 1
}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
running() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Sends SIGTERM and waits until the process is gone (dbfleet exits within
# 10 s of SIGTERM), so its ports are free again.
stop() {
    local pid
    pid=$(cat "$state/$1.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$state/$1.pid"; return 0; }
        sleep 0.1
    done
    fail "$1 (pid $pid) did not exit within 15 s of SIGTERM" "$state/$1.log"
}
# The HTTP status of GET http://127.0.0.1:PORT/PATH, or nothing.
http_status() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 0
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
        read -r -t 5 _ status _ <&3 && printf '%s' "$status"
    ) 2>/dev/null || true
}

eval "$(bash scripts/test-env.sh)"

log "building dbfleet"
cargo build --workspace --quiet
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir=$repo/$target_dir ;; esac
bin=$target_dir/debug

mkdir -p "$state/bin"
ln -sf "$KUBEBUILDER_ASSETS/kubectl" "$state/bin/kubectl"
kubectl=("$state/bin/kubectl" --kubeconfig "$state/kubeconfig")

if running control-plane; then
    log "control plane already running"
else
    listening "$api_port" && fail "port $api_port is taken by something this script did not start; set DBFLEET_API_SERVER_PORT"
    log "starting the control plane on https://127.0.0.1:$api_port"
    rm -f "$state/control-plane.log"
    # setsid: the control plane outlives this shell and its terminal.
    setsid nohup "$bin/dbfleet-testenv" up --state-dir "$state/control-plane" --port "$api_port" --crds crds \
        >"$state/control-plane.log" 2>&1 &
    echo $! >"$state/control-plane.pid"
    for _ in $(seq 1 600); do
        grep -q "control plane ready" "$state/control-plane.log" && break
        running control-plane || fail "the control plane exited" "$state/control-plane.log"
        sleep 0.2
    done
    grep -q "control plane ready" "$state/control-plane.log" ||
        fail "the control plane did not come up within 120 s" "$state/control-plane.log"
    cp "$state/control-plane/kubeconfig" "$state/kubeconfig"
fi
# Keeps the CRDs current when this script runs against a stack started earlier.
"${kubectl[@]}" apply --server-side --force-conflicts -f crds/ >/dev/null

# The examples' credential Secrets name a login `dbfleet_monitor` with the
# password `change-me`; create it on both servers with only the monitoring
# grants of docs/probes.md. A demo database gives the capacity columns data.
monitor_password=change-me
as_root runuser -u postgres -- psql -q -X -p "$DBFLEET_TEST_POSTGRES_PORT" -v ON_ERROR_STOP=1 >&2 <<SQL
SET client_min_messages = warning;
SELECT 'CREATE ROLE dbfleet_monitor' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbfleet_monitor')\gexec
ALTER ROLE dbfleet_monitor WITH LOGIN PASSWORD '$monitor_password';
GRANT pg_monitor TO dbfleet_monitor;
SELECT 'CREATE DATABASE dbfleet_demo' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'dbfleet_demo')\gexec
\c dbfleet_demo
SET client_min_messages = warning;
CREATE TABLE IF NOT EXISTS orders (id bigserial PRIMARY KEY, placed_at timestamptz NOT NULL DEFAULT now(), note text);
INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 20000) g WHERE NOT EXISTS (SELECT FROM orders);
SQL
as_root mariadb --protocol=socket -uroot >&2 <<SQL
CREATE USER IF NOT EXISTS 'dbfleet_monitor'@'127.0.0.1' IDENTIFIED BY '$monitor_password';
GRANT SHOW VIEW ON *.* TO 'dbfleet_monitor'@'127.0.0.1';
GRANT SELECT ON mysql.* TO 'dbfleet_monitor'@'127.0.0.1';
CREATE DATABASE IF NOT EXISTS dbfleet_demo;
USE dbfleet_demo;
CREATE TABLE IF NOT EXISTS dbfleet_demo.products (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100));
INSERT INTO dbfleet_demo.products (name) SELECT CONCAT('product ', seq) FROM seq_1_to_20000 WHERE NOT EXISTS (SELECT 1 FROM dbfleet_demo.products LIMIT 1);
SQL

# A rebuilt binary must replace the running one; stop it before touching
# what it watches, so it never sees the examples half applied.
if running dbfleet; then
    log "stopping the running dbfleet (it may have been rebuilt)"
    stop dbfleet
fi
for port in "$facade_port" "$metrics_port"; do
    listening "$port" && fail "port $port is taken; set DBFLEET_FACADE_PORT and DBFLEET_METRICS_PORT"
done

# The namespace comes first: the examples and dbfleet's own Lease, CSRF key
# and id counter live in it.
log "applying examples/ into namespace $namespace"
"${kubectl[@]}" create namespace "$namespace" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
"${kubectl[@]}" -n "$namespace" apply --server-side --force-conflicts -f examples/ >/dev/null
# examples/credentials.yaml holds a placeholder for pg-ca; here the CA that
# signs the local PostgreSQL's certificate (made by scripts/test-env.sh)
# replaces it, so ledger-pg (verify-full) verifies for real.
cp "$DBFLEET_TEST_POSTGRES_CA" "$state/pg-ca.crt"
"${kubectl[@]}" -n "$namespace" create secret generic pg-ca --from-file=ca.crt="$state/pg-ca.crt" \
    --dry-run=client -o yaml |
    "${kubectl[@]}" label --local -f - dbfleet.io/ca=true -o yaml |
    "${kubectl[@]}" -n "$namespace" apply --server-side --force-conflicts -f - >/dev/null
# A token for the examples' REST client (ServiceAccount inventory-admin).
"${kubectl[@]}" -n "$namespace" create token inventory-admin --duration 24h >"$state/token"

log "starting dbfleet (controllers + REST façade on http://127.0.0.1:$facade_port)"
KUBECONFIG=$state/kubeconfig setsid nohup "$bin/dbfleet" run --namespace "$namespace" \
    --listen "127.0.0.1:$facade_port" --http-addr "127.0.0.1:$metrics_port" --lease-namespace "$namespace" \
    >"$state/dbfleet.log" 2>&1 &
echo $! >"$state/dbfleet.pid"

# Ready: the controllers hold the Lease and the façade has its caches.
for _ in $(seq 1 300); do
    running dbfleet || fail "dbfleet exited" "$state/dbfleet.log"
    [ "$(http_status "$metrics_port" /readyz)" = 200 ] && [ "$(http_status "$facade_port" /readyz)" = 200 ] && break
    sleep 0.2
done
[ "$(http_status "$facade_port" /readyz)" = 200 ] || fail "dbfleet is not ready after 60 s" "$state/dbfleet.log"

# Probed: every instance has a phase beyond Pending (Inactive ones
# included), and every Ready one its capacity and accounts, which follow
# its first connection test.
log "waiting for dbfleet to probe the example instances"
# name=phase/databaseCount/accountCount entries: true while any is unprobed.
unprobed() {
    [ -n "$1" ] || return 0
    local entry
    for entry in $1; do
        case $entry in *=/* | *=Pending/* | *=Ready//* | *=Ready/*/) return 0 ;; esac
    done
    return 1
}
phases=
for _ in $(seq 1 $((probe_timeout * 2))); do
    running dbfleet || fail "dbfleet exited" "$state/dbfleet.log"
    phases=$("${kubectl[@]}" -n "$namespace" get dbi -o jsonpath='{range .items[*]}{.metadata.name}={.status.phase}/{.status.capacity.databaseCount}/{.status.accounts.count}{" "}{end}')
    unprobed "$phases" || break
    sleep 0.5
done
if unprobed "$phases"; then
    "${kubectl[@]}" -n "$namespace" get dbi -o wide >&2 || true
    fail "not every instance was probed within ${probe_timeout} s: $phases" "$state/dbfleet.log"
fi

"${kubectl[@]}" -n "$namespace" get dbtag,dbi,dbsync
cat <<EOF

dbfleet's local stack is up.
  export KUBECONFIG=$state/kubeconfig PATH=$state/bin:\$PATH
  kubectl -n $namespace get dbi            # the instances with their probed status (-o wide for more)
  kubectl -n $namespace get dbi orders-pg -o yaml
  kubectl -n $namespace annotate dbi orders-pg dbfleet.io/sync-accounts-requested-at=\$(date +%s) --overwrite
  kubectl -n $namespace get events         # connection changes, failed syncs
  kubectl -n $namespace get dbtag          # tags in two categories
  kubectl explain dbinstance.spec          # the schema, from the CRD
PostgreSQL: 127.0.0.1:$DBFLEET_TEST_POSTGRES_PORT (TLS CA: $state/pg-ca.crt)   MariaDB: 127.0.0.1:$DBFLEET_TEST_MYSQL_PORT   (login dbfleet_monitor / $monitor_password)

The REST façade (token of the ServiceAccount inventory-admin in $state/token):
  TOKEN=\$(cat $state/token)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$facade_port/api/v1/instances
  CSRF=\$(curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:$facade_port/api/v1/auth/csrf-token | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["csrf_token"])')
  CRED=\$(kubectl -n $namespace get secret pg-monitor -o jsonpath='{.metadata.labels.dbfleet\.io/id}')
  curl -s -X POST -H "Authorization: Bearer \$TOKEN" -H "X-CSRFToken: \$CSRF" -H 'Content-Type: application/json' \\
       -d '{"name": "reports-pg", "db_type": "postgresql", "host": "127.0.0.1", "port": 5432, "credential_id": '\$CRED'}' \\
       http://127.0.0.1:$facade_port/api/v1/instances
  OpenAPI: http://127.0.0.1:$facade_port/api/v1/openapi.json   Metrics: http://127.0.0.1:$metrics_port/metrics

The web console: http://127.0.0.1:$facade_port/console/
  Sign in with the token in $state/token, or make one:
  KUBECONFIG=$state/kubeconfig kubectl -n $namespace create token inventory-admin --duration 8h
Logs: $state/*.log   Stop: scripts/down.sh
EOF
