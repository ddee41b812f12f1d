#!/usr/bin/env bash
# A second PostgreSQL cluster (port 5433) and a second MariaDB (port 3307)
# on loopback, each holding the probe benchmark's fixtures (200 databases,
# 2,000 accounts), for benchmarks that need servers of realistic size beside
# the small ones of scripts/test-env.sh; and a third MariaDB (port 3309)
# with 20,000 accounts and 2,000 databases, the server whose inventory
# spreads over several DbInventory objects. (Not a PostgreSQL one: 2,000
# PostgreSQL databases take ~15 GB of disk before holding a row.)
# Idempotent: a second run only starts what is stopped and creates what is
# missing. Run after test-env.sh; prints `export` lines:
#   eval "$(bash scripts/test-env.sh)"; eval "$(bash scripts/bench-servers.sh)"
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
admin_user=${DBFLEET_TEST_POSTGRES_USER:?run scripts/test-env.sh first}
admin_password=${DBFLEET_TEST_POSTGRES_PASSWORD:?run scripts/test-env.sh first}
pg_port=5433
mysql_port=3307
# Outside /root: the mysql user must reach it.
mysql_dir=/var/lib/dbfleet-bench/mariadb-large
huge_port=3309
huge_dir=/var/lib/dbfleet-bench/mariadb-huge
huge_accounts=20000
huge_databases=2000

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

# A MariaDB of its own in $1 on port $2, with the admin login.
start_mariadb() {
    local dir=$1 port=$2 socket=$1/mysqld.sock
    if [ ! -d "$dir/mysql" ]; then
        log "creating a MariaDB in $dir"
        mkdir -p "$dir"
        chown mysql:mysql "$dir"
        mariadb-install-db --user=mysql --datadir="$dir" --auth-root-authentication-method=socket >/dev/null 2>&1
    fi
    if ! mariadb --protocol=socket -S "$socket" -uroot -e 'SELECT 1' >/dev/null 2>&1; then
        log "starting the MariaDB in $dir on port $port"
        (setsid /usr/sbin/mariadbd --user=mysql --datadir="$dir" --port="$port" \
            --bind-address=127.0.0.1 --socket="$socket" --pid-file="$dir/mysqld.pid" \
            --skip-log-bin --max-connections=500 >"$dir/mysqld.log" 2>&1 &)
    fi
    wait_for_port "$port"
    mariadb --protocol=socket -S "$socket" -uroot >&2 <<SQL
CREATE USER IF NOT EXISTS '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_password';
ALTER USER '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_password';
GRANT ALL PRIVILEGES ON *.* TO '$admin_user'@'127.0.0.1' WITH GRANT OPTION;
SQL
}

start_mariadb "$mysql_dir" "$mysql_port"
start_mariadb "$huge_dir" "$huge_port"
huge_socket=$huge_dir/mysqld.sock
if [ "$(mariadb --protocol=socket -S "$huge_socket" -uroot -N -e \
    "SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'huge\\_u\\_%'")" -lt "$huge_accounts" ]; then
    log "fixtures of the huge server: $huge_databases databases, $huge_accounts accounts"
    {
        for d in $(seq 1 "$huge_databases"); do echo "CREATE DATABASE IF NOT EXISTS huge_db_$d;"; done
        # Each account reads one database, as an application login would.
        for u in $(seq 1 "$huge_accounts"); do
            echo "CREATE USER IF NOT EXISTS 'huge_u_$u'@'10.0.%' IDENTIFIED BY 'bench-only-$u';"
            echo "GRANT SELECT, INSERT ON huge_db_$(( (u - 1) % huge_databases + 1 )).* TO 'huge_u_$u'@'10.0.%';"
        done
    } | mariadb --protocol=socket -S "$huge_socket" -uroot >&2
fi

log "fixtures: 200 databases and 2,000 accounts on each (created where missing)"
(cd "$repo" && DBFLEET_TEST_POSTGRES_PORT=$pg_port DBFLEET_TEST_MYSQL_PORT=$mysql_port \
    cargo bench -q --bench probes -- --setup-only >&2)

cat <<OUT
export DBFLEET_BENCH_LARGE_POSTGRES_PORT='$pg_port'
export DBFLEET_BENCH_LARGE_MYSQL_PORT='$mysql_port'
export DBFLEET_BENCH_HUGE_MYSQL_PORT='$huge_port'
OUT
