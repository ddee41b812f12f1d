#!/usr/bin/env bash
# A second PostgreSQL cluster (port 5433) and a second MariaDB (port 3307)
# on loopback, each holding the probe benchmark's fixtures (200 databases,
# 2,000 accounts), for benchmarks that need servers of realistic size beside
# the small ones of scripts/test-env.sh. Idempotent: a second run only
# starts what is stopped. Run after test-env.sh; prints `export` lines:
#   eval "$(bash scripts/test-env.sh)"; eval "$(bash scripts/bench-servers.sh)"
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
admin_user=${DBFLEET_TEST_POSTGRES_USER:?run scripts/test-env.sh first}
admin_password=${DBFLEET_TEST_POSTGRES_PASSWORD:?run scripts/test-env.sh first}
pg_port=5433
mysql_port=3307
# Outside /root: the mysql user must reach it.
mysql_dir=/var/lib/dbfleet-bench/mariadb-large

log() { printf '[bench-servers] %s\n' "$*" >&2; }
wait_for_port() {
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    log "error: nothing listens on 127.0.0.1:$1"
    exit 1
}

version=$(pg_lsclusters -h | awk '$2 == "main" { print $1 }')
if ! pg_lsclusters -h | awk '$2 == "large"' | grep -q .; then
    log "creating PostgreSQL $version cluster large on port $pg_port"
    pg_createcluster "$version" large --port "$pg_port" >&2
fi
if ! pg_lsclusters -h | awk '$2 == "large" && $4 == "online"' | grep -q .; then
    pg_ctlcluster "$version" large start >&2
fi
wait_for_port "$pg_port"
runuser -u postgres -- psql -q -X -p "$pg_port" -v ON_ERROR_STOP=1 >&2 <<SQL
SELECT 'CREATE ROLE $admin_user' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$admin_user')\gexec
ALTER ROLE $admin_user WITH LOGIN SUPERUSER CREATEDB CREATEROLE PASSWORD '$admin_password';
SQL

if [ ! -d "$mysql_dir/mysql" ]; then
    log "creating a second MariaDB in $mysql_dir"
    mkdir -p "$mysql_dir"
    chown mysql:mysql "$mysql_dir"
    mariadb-install-db --user=mysql --datadir="$mysql_dir" --auth-root-authentication-method=socket >/dev/null 2>&1
fi
socket=$mysql_dir/mysqld.sock
if ! mariadb --protocol=socket -S "$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
    log "starting the second MariaDB on port $mysql_port"
    (setsid /usr/sbin/mariadbd --user=mysql --datadir="$mysql_dir" --port="$mysql_port" \
        --bind-address=127.0.0.1 --socket="$socket" --pid-file="$mysql_dir/mysqld.pid" \
        --skip-log-bin --max-connections=500 >"$mysql_dir/mysqld.log" 2>&1 &)
fi
wait_for_port "$mysql_port"
mariadb --protocol=socket -S "$socket" -uroot >&2 <<SQL
CREATE USER IF NOT EXISTS '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_password';
ALTER USER '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_password';
GRANT ALL PRIVILEGES ON *.* TO '$admin_user'@'127.0.0.1' WITH GRANT OPTION;
SQL

log "fixtures: 200 databases and 2,000 accounts on each (created where missing)"
(cd "$repo" && DBFLEET_TEST_POSTGRES_PORT=$pg_port DBFLEET_TEST_MYSQL_PORT=$mysql_port \
    cargo bench -q --bench probes -- --setup-only >&2)

cat <<OUT
export DBFLEET_BENCH_LARGE_POSTGRES_PORT='$pg_port'
export DBFLEET_BENCH_LARGE_MYSQL_PORT='$mysql_port'
OUT
