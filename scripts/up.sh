#!/usr/bin/env bash
# Brings the whole local stack up on this machine, from nothing:
# PostgreSQL and MariaDB, a Kubernetes control plane (etcd + kube-apiserver),
# the dbfleet CRDs, monitoring logins on both databases, the dbfleet
# controller, and the examples.
# Everything it starts keeps running in the background; scripts/down.sh stops
# it. Running it again reuses what is already up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
state=$repo/.dbfleet
namespace=dbfleet-demo
api_port=${DBFLEET_API_SERVER_PORT:-6443}

log() { printf '[up] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

eval "$(bash scripts/test-env.sh)"

log "building dbfleet"
cargo build --workspace --quiet

mkdir -p "$state/bin"
ln -sf "$KUBEBUILDER_ASSETS/kubectl" "$state/bin/kubectl"
kubectl=("$state/bin/kubectl" --kubeconfig "$state/kubeconfig")

running() { [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

if running control-plane; then
    log "control plane already running"
else
    if (exec 3<>"/dev/tcp/127.0.0.1/$api_port") 2>/dev/null; then
        log "port $api_port is taken by something this script did not start; set DBFLEET_API_SERVER_PORT"
        exit 1
    fi
    log "starting the control plane on https://127.0.0.1:$api_port"
    rm -f "$state/control-plane.ready"
    # setsid: the control plane outlives this shell and its terminal.
    setsid nohup target/debug/dbfleet-testenv up --state-dir "$state/control-plane" --port "$api_port" --crds crds \
        >"$state/control-plane.log" 2>&1 &
    echo $! >"$state/control-plane.pid"
    for _ in $(seq 1 300); do
        grep -q "control plane ready" "$state/control-plane.log" && break
        running control-plane || { cat "$state/control-plane.log" >&2; exit 1; }
        sleep 0.2
    done
    grep -q "control plane ready" "$state/control-plane.log" || { log "control plane did not come up"; exit 1; }
    cp "$state/control-plane/kubeconfig" "$state/kubeconfig"
fi
# Keeps the CRDs current when this script runs against a stack started earlier.
"${kubectl[@]}" apply --server-side --force-conflicts -f crds/ >/dev/null

# The examples' credential Secrets name a login `dbfleet_monitor` with the
# password `change-me`; create it on both servers with only the monitoring
# grants of docs/probes.md. A demo database gives the capacity columns data.
monitor_password=change-me
as_root runuser -u postgres -- psql -q -p "$DBFLEET_TEST_POSTGRES_PORT" -v ON_ERROR_STOP=1 >&2 <<SQL
SELECT 'CREATE ROLE dbfleet_monitor' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dbfleet_monitor')\gexec
ALTER ROLE dbfleet_monitor WITH LOGIN PASSWORD '$monitor_password';
GRANT pg_monitor TO dbfleet_monitor;
SELECT 'CREATE DATABASE dbfleet_demo' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'dbfleet_demo')\gexec
\c dbfleet_demo
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

if running dbfleet; then
    log "restarting dbfleet (it may have been rebuilt)"
    kill "$(cat "$state/dbfleet.pid")"
    sleep 1
fi
log "starting dbfleet (controllers + REST façade on http://127.0.0.1:8000)"
KUBECONFIG=$state/kubeconfig setsid nohup target/debug/dbfleet run --namespace "$namespace" \
    --listen 127.0.0.1:8000 --http-addr 127.0.0.1:8080 --lease-namespace "$namespace" \
    >"$state/dbfleet.log" 2>&1 &
echo $! >"$state/dbfleet.pid"

log "applying examples/ into namespace $namespace"
"${kubectl[@]}" create namespace "$namespace" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
"${kubectl[@]}" -n "$namespace" apply --server-side -f examples/ >/dev/null
# A token for the examples' REST client (ServiceAccount inventory-admin).
"${kubectl[@]}" -n "$namespace" create token inventory-admin --duration 24h >"$state/token"

# Wait for the first probes so what is printed below has real values.
for _ in $(seq 1 50); do
    phases=$("${kubectl[@]}" -n "$namespace" get dbi -o jsonpath='{range .items[*]}{.status.phase}{" "}{end}')
    case "$phases" in *Ready*) break ;; esac
    sleep 0.2
done
"${kubectl[@]}" -n "$namespace" get dbtag,dbi,dbsync
cat <<EOF

dbfleet's local stack is up.
  export KUBECONFIG=$state/kubeconfig PATH=$state/bin:\$PATH
  kubectl -n $namespace get dbi            # the instances with their probed status
  kubectl -n $namespace get dbi orders-pg -o yaml
  kubectl -n $namespace annotate dbi orders-pg dbfleet.io/sync-accounts-requested-at=\$(date +%s) --overwrite
  kubectl -n $namespace get events         # connection changes, failed syncs
  kubectl -n $namespace get dbtag          # tags in two categories
  kubectl explain dbinstance.spec          # the schema, from the CRD
PostgreSQL: 127.0.0.1:$DBFLEET_TEST_POSTGRES_PORT   MariaDB: 127.0.0.1:$DBFLEET_TEST_MYSQL_PORT   (login dbfleet_monitor / $monitor_password)

The REST façade (token of the ServiceAccount inventory-admin in $state/token):
  TOKEN=\$(cat $state/token)
  curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8000/api/v1/instances
  CSRF=\$(curl -s -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8000/api/v1/auth/csrf-token | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["csrf_token"])')
  CRED=\$(kubectl -n $namespace get secret pg-monitor -o jsonpath='{.metadata.labels.dbfleet\.io/id}')
  curl -s -X POST -H "Authorization: Bearer \$TOKEN" -H "X-CSRFToken: \$CSRF" -H 'Content-Type: application/json' \\
       -d '{"name": "reports-pg", "db_type": "postgresql", "host": "127.0.0.1", "port": 5432, "credential_id": '\$CRED'}' \\
       http://127.0.0.1:8000/api/v1/instances
  OpenAPI: http://127.0.0.1:8000/api/v1/openapi.json   Metrics: http://127.0.0.1:8080/metrics
Logs: $state/*.log   Stop: scripts/down.sh
EOF
