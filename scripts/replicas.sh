#!/usr/bin/env bash
# Real replicas of the local test servers, for the replication-topology
# tests:
#   - a PostgreSQL cluster `replica` on port 5434, made with pg_basebackup
#     from Debian's tools: a streaming replica of the cluster `main`;
#   - a second mariadbd on port 3308, replicating from the main MariaDB
#     (port 3306) with GTID, seeded from a consistent dump.
#
#   scripts/replicas.sh prepare   before the main MariaDB starts: it writes
#                                 a binary log (server_id 1), which a
#                                 replica needs; scripts/test-env.sh runs it
#   scripts/replicas.sh up        make or reuse both replicas (a broken one
#                                 is rebuilt); prints `export` lines
#   scripts/replicas.sh down      stop and delete both replicas
#
# Idempotent, like scripts/test-env.sh, which runs `prepare` and `up`.
# Ports 5433 and 3307 are scripts/bench-servers.sh's.
set -euo pipefail

# Throwaway credentials for throwaway local servers; never used elsewhere.
replicator=dbfleet_replicator
replicator_password=${DBFLEET_TEST_REPLICATOR_PASSWORD:-dbfleet-test-replicator}
pg_replica_port=5434
mysql_port=3306
mysql_replica_port=3308
# Outside /root: the mysql user must reach it.
mysql_replica_dir=/var/lib/dbfleet-test/mariadb-replica
mysql_replica_socket=$mysql_replica_dir/mysqld.sock
mariadb_binlog_cnf=/etc/mysql/mariadb.conf.d/60-dbfleet-replication.cnf

log() { printf '[replicas] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

wait_for_port() { # port what
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.2
    done
    die "$2 is not listening on 127.0.0.1:$1"
}

pg_version() { pg_lsclusters -h | awk '$2 == "main" { print $1 }'; }
pg_main_port() { pg_lsclusters -h | awk '$2 == "main" { print $3 }'; }
pg_on() { # port psql-args...
    local port=$1
    shift
    as_root runuser -u postgres -- psql -q -X -At -p "$port" -v ON_ERROR_STOP=1 "$@"
}

# The replica follows `main` if it is in recovery and its WAL receiver streams.
pg_replica_healthy() {
    pg_lsclusters -h | awk '$2 == "replica" && $4 ~ /^online/' | grep -q . || return 1
    [ "$(pg_on "$pg_replica_port" -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ] || return 1
    for _ in $(seq 1 50); do
        [ "$(pg_on "$pg_replica_port" -c 'SELECT status FROM pg_stat_wal_receiver' 2>/dev/null)" = streaming ] &&
            return 0
        sleep 0.2
    done
    return 1
}

pg_replica_down() {
    local version
    version=$(pg_version)
    if pg_lsclusters -h | awk '$2 == "replica"' | grep -q .; then
        log "deleting the PostgreSQL cluster replica"
        as_root pg_dropcluster --stop "$version" replica >&2
    fi
}

pg_replica_up() {
    local version main_port data
    version=$(pg_version)
    main_port=$(pg_main_port)
    [ -n "$version" ] || die "no PostgreSQL cluster main: run scripts/test-env.sh"
    pg_on "$main_port" >&2 <<SQL
SELECT 'CREATE ROLE $replicator' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$replicator')\gexec
ALTER ROLE $replicator WITH LOGIN REPLICATION PASSWORD '$replicator_password';
SQL
    if pg_lsclusters -h | awk '$2 == "replica"' | grep -q .; then
        if ! pg_lsclusters -h | awk '$2 == "replica" && $4 ~ /^online/' | grep -q .; then
            as_root pg_ctlcluster "$version" replica start >&2 || true
        fi
        pg_replica_healthy && return 0
        log "the PostgreSQL replica does not stream from main; making it again"
        pg_replica_down
    fi
    log "making PostgreSQL $version cluster replica on port $pg_replica_port with pg_basebackup from main"
    as_root pg_createcluster "$version" replica --port "$pg_replica_port" >&2
    data=$(pg_lsclusters -h | awk '$2 == "replica" { print $6 }')
    as_root find "$data" -mindepth 1 -delete
    # -R writes standby.signal and primary_conninfo: a streaming replica.
    as_root runuser -u postgres -- env PGPASSWORD="$replicator_password" \
        "/usr/lib/postgresql/$version/bin/pg_basebackup" -h 127.0.0.1 -p "$main_port" -U "$replicator" \
        -D "$data" -R -X stream --checkpoint=fast >&2
    as_root pg_ctlcluster "$version" replica start >&2
    wait_for_port "$pg_replica_port" "the PostgreSQL replica"
    pg_replica_healthy || die "the PostgreSQL replica on port $pg_replica_port does not stream from main"
}

mysql_main() { as_root mariadb --protocol=socket -uroot "$@"; }
mysql_replica() { as_root mariadb --protocol=socket -S "$mysql_replica_socket" -uroot "$@"; }

# The main MariaDB writes a binary log, read at start-up only.
mariadb_prepare() {
    if [ ! -e "$mariadb_binlog_cnf" ]; then
        log "the main MariaDB will write a binary log ($mariadb_binlog_cnf) for its test replica"
        as_root tee "$mariadb_binlog_cnf" >/dev/null <<'CNF'
# dbfleet's tests (scripts/replicas.sh): a binary log, so that a second
# mariadbd on port 3308 can replicate from this one with GTID.
[mariadbd]
server_id = 1
log_bin = mariadb-bin
binlog_format = MIXED
CNF
    fi
}

mysql_replica_healthy() {
    local status
    status=$(mysql_replica -e 'SHOW REPLICA STATUS\G' 2>/dev/null) || return 1
    grep -q 'Slave_IO_Running: Yes' <<<"$status" && grep -q 'Slave_SQL_Running: Yes' <<<"$status"
}

mysql_replica_stop() {
    local pid
    [ -e "$mysql_replica_dir/mysqld.pid" ] || return 0
    pid=$(cat "$mysql_replica_dir/mysqld.pid")
    if kill -0 "$pid" 2>/dev/null; then
        as_root kill "$pid"
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.2
        done
        die "the MariaDB replica (pid $pid) did not stop"
    fi
}

mysql_replica_down() {
    if [ -d "$mysql_replica_dir" ]; then
        log "deleting the MariaDB replica in $mysql_replica_dir"
        mysql_replica_stop
        as_root rm -rf "$mysql_replica_dir"
    fi
}

mysql_replica_start() {
    if ! mysql_replica -e 'SELECT 1' >/dev/null 2>&1; then
        log "starting the MariaDB replica on port $mysql_replica_port"
        (as_root setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$mysql_replica_dir" \
            --port="$mysql_replica_port" --bind-address=127.0.0.1 --socket="$mysql_replica_socket" \
            --pid-file="$mysql_replica_dir/mysqld.pid" --server-id=2 --skip-log-bin --read-only=ON \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
            >"$mysql_replica_dir/mysqld.log" 2>&1 &)
    fi
    wait_for_port "$mysql_replica_port" "the MariaDB replica"
    for _ in $(seq 1 50); do
        mysql_replica -e 'SELECT 1' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "the MariaDB replica does not answer on $mysql_replica_socket"
}

mysql_replica_up() {
    mysql_main -e 'SELECT 1' >/dev/null 2>&1 || die "the main MariaDB is not running: run scripts/test-env.sh"
    if [ "$(mysql_main -N -e 'SELECT @@log_bin')" != 1 ]; then
        # Only when it was started before `prepare` wrote its configuration.
        log "restarting the main MariaDB once, so that it writes a binary log"
        as_root service mariadb restart >&2 || as_root /etc/init.d/mariadb restart >&2
        wait_for_port "$mysql_port" "the main MariaDB"
    fi
    mysql_main >&2 <<SQL
CREATE USER IF NOT EXISTS '$replicator'@'127.0.0.1' IDENTIFIED BY '$replicator_password';
ALTER USER '$replicator'@'127.0.0.1' IDENTIFIED BY '$replicator_password';
GRANT REPLICATION SLAVE ON *.* TO '$replicator'@'127.0.0.1';
SQL
    if [ -d "$mysql_replica_dir/mysql" ]; then
        mysql_replica_start
        mysql_replica_healthy && return 0
        log "the MariaDB replica does not follow the main one; making it again"
        mysql_replica_down
    fi
    log "making a MariaDB replica in $mysql_replica_dir, seeded from a dump of the main one"
    as_root mkdir -p "$mysql_replica_dir"
    as_root chown mysql:mysql "$mysql_replica_dir"
    as_root mariadb-install-db --no-defaults --user=mysql --datadir="$mysql_replica_dir" \
        --auth-root-authentication-method=socket >/dev/null 2>&1
    mysql_replica_start
    # One consistent snapshot and its GTID position, so the replica goes on
    # exactly where the snapshot ends. The position is set after the load:
    # the dump's own copy of mysql.gtid_slave_pos would overwrite it.
    local dump position
    dump=$(mktemp)
    as_root mariadb-dump --protocol=socket -uroot --all-databases --single-transaction --gtid \
        --master-data=2 --routines --events --triggers >"$dump"
    position=$(sed -n "s/^-- SET GLOBAL gtid_slave_pos='\([^']*\)';.*/\1/p" "$dump" | head -1)
    mysql_replica <"$dump"
    rm -f "$dump"
    mysql_replica >&2 <<SQL
FLUSH PRIVILEGES;
SET GLOBAL gtid_slave_pos = '$position';
CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=$mysql_port, MASTER_USER='$replicator',
    MASTER_PASSWORD='$replicator_password', MASTER_USE_GTID=slave_pos;
START REPLICA;
SQL
    for _ in $(seq 1 50); do
        mysql_replica_healthy && return 0
        sleep 0.2
    done
    mysql_replica -e 'SHOW REPLICA STATUS\G' >&2 || true
    die "the MariaDB replica on port $mysql_replica_port does not replicate"
}

case "${1:-}" in
prepare)
    mariadb_prepare
    ;;
up)
    mariadb_prepare
    pg_replica_up
    mysql_replica_up
    cat <<EOF
export DBFLEET_TEST_POSTGRES_REPLICA_PORT='$pg_replica_port'
export DBFLEET_TEST_MYSQL_REPLICA_PORT='$mysql_replica_port'
EOF
    ;;
down)
    pg_replica_down
    mysql_replica_down
    ;;
*)
    echo "usage: $0 prepare|up|down" >&2
    exit 2
    ;;
esac
