#!/usr/bin/env bash
# Brings up everything dbfleet's tests need on this machine, reusing whatever
# is already installed, running or built:
#   - PostgreSQL and MariaDB from Debian packages, on loopback, with an admin
#     login for the tests;
#   - a throwaway CA and a PostgreSQL server certificate it signs (naming
#     localhost and 127.0.0.1), so `verify-full` works for real against the
#     local PostgreSQL — in the tests and in scripts/up.sh's examples alike;
#   - a streaming replica of that PostgreSQL and a GTID replica of that
#     MariaDB, on other ports, for the replication-topology tests
#     (scripts/replicas.sh; `scripts/replicas.sh down` deletes them);
#   - etcd, kube-apiserver and kubectl built with Go from the Kubernetes release pinned
#     in scripts/controlplane/go.mod, and helm and kube-score (for the chart
#     tests), all cached so a second run builds nothing.
#
# Progress goes to stderr; stdout is `export` lines for the test run:
#   eval "$(scripts/test-env.sh)"
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${DBFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbfleet}

# Throwaway credentials for throwaway local servers; never used elsewhere.
admin_user=dbfleet_admin
admin_password=${DBFLEET_TEST_ADMIN_PASSWORD:-dbfleet-test-admin}
pg_host=127.0.0.1
mysql_host=127.0.0.1
mysql_port=3306

log() { printf '[test-env] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    local missing=()
    command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
    command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
    command -v openssl >/dev/null || missing+=(openssl)
    command -v flock >/dev/null || missing+=(util-linux)
    # The chart tests run the `helm test` pod's script, which uses wget.
    command -v wget >/dev/null || missing+=(wget)
    # The console's browser tests (tests/console) drive headless Chromium
    # through chromedriver, both from Debian.
    command -v chromium >/dev/null || missing+=(chromium)
    command -v chromedriver >/dev/null || missing+=(chromium-driver)
    # The chart's alerts and dashboard are evaluated by a real Prometheus
    # (tests/chart/prometheus.rs), with its promtool.
    command -v promtool >/dev/null || missing+=(prometheus)
    command -v go >/dev/null || die "Go is required to build kube-apiserver and etcd (https://go.dev/doc/install)"
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} from Debian packages"
        as_root apt-get update -qq >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
}

wait_for_port() { # host port what
    for _ in $(seq 1 150); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        sleep 0.2
    done
    die "$3 is not listening on $1:$2"
}

start_postgres() {
    local version name port status
    # The cluster named main; scripts/bench-servers.sh adds others beside it.
    if ! pg_lsclusters -h | awk '$2 == "main"' | grep -q .; then
        version=$(ls /usr/lib/postgresql | sort -n | tail -1)
        log "creating PostgreSQL $version cluster"
        as_root pg_createcluster "$version" main >&2
    fi
    read -r version name port status _ < <(pg_lsclusters -h | awk '$2 == "main"' | head -1)
    if [ "$status" != online ]; then
        log "starting PostgreSQL $version/$name on port $port"
        as_root pg_ctlcluster "$version" "$name" start >&2
    fi
    wait_for_port "$pg_host" "$port" PostgreSQL
    as_root runuser -u postgres -- psql -q -p "$port" -v ON_ERROR_STOP=1 >&2 <<SQL
SELECT 'CREATE ROLE $admin_user' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$admin_user')\gexec
ALTER ROLE $admin_user WITH LOGIN SUPERUSER CREATEDB CREATEROLE PASSWORD '$admin_password';
SQL
    pg_port=$port
}

pg_admin() { as_root runuser -u postgres -- psql -q -X -p "$pg_port" -v ON_ERROR_STOP=1 "$@"; }

# The local PostgreSQL's TLS: one throwaway CA and a server certificate it
# signs for localhost and 127.0.0.1, made once per machine and kept in the
# cache (the server is the machine's, shared by every test run and by the
# local stack, so its certificate must not change with either). The key
# pair is copied into the cluster's data directory, where only postgres
# reads it, and the configuration reloaded only when something changed.
configure_postgres_tls() {
    local dir=$cache/postgres-tls
    mkdir -p "$dir"
    (
        flock 9
        if ! openssl verify -CAfile "$dir/ca.crt" "$dir/server.crt" >/dev/null 2>&1 ||
            ! openssl x509 -in "$dir/server.crt" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
            log "making a throwaway CA and a PostgreSQL server certificate in $dir"
            rm -f "$dir"/*.crt "$dir"/*.key "$dir"/*.csr "$dir"/*.srl
            cat >"$dir/openssl.cnf" <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = dbfleet throwaway local CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
            openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 3650 \
                -config "$dir/openssl.cnf" -extensions ca -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
            openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -subj /CN=localhost \
                -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
            openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
                -days 825 -extfile "$dir/openssl.cnf" -extensions server -out "$dir/server.crt" 2>/dev/null
            chmod 600 "$dir/ca.key" "$dir/server.key"
        fi
        local data changed=
        data=$(pg_admin -At -c 'SHOW data_directory')
        for file in server.crt server.key; do
            if ! as_root cmp -s "$dir/$file" "$data/dbfleet-$file"; then
                as_root install -o postgres -g postgres -m 600 "$dir/$file" "$data/dbfleet-$file"
                changed=1
            fi
        done
        if [ "$(pg_admin -At -c 'SHOW ssl_cert_file')" != "$data/dbfleet-server.crt" ] ||
            [ "$(pg_admin -At -c 'SHOW ssl')" != on ]; then
            changed=1
        fi
        if [ -n "$changed" ]; then
            log "PostgreSQL serves TLS with the certificate in $dir"
            pg_admin >/dev/null <<SQL
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$data/dbfleet-server.crt';
ALTER SYSTEM SET ssl_key_file = '$data/dbfleet-server.key';
SELECT pg_reload_conf();
SQL
            # The reload is asynchronous; wait until the server uses it.
            for _ in $(seq 1 50); do
                [ "$(pg_admin -At -c 'SHOW ssl_cert_file')" = "$data/dbfleet-server.crt" ] && break
                sleep 0.1
            done
        fi
    ) 9>"$dir/.lock"
    pg_ca=$dir/ca.crt
}

mysql_root() { as_root mariadb --protocol=socket -uroot "$@"; }

start_mariadb() {
    if ! mysql_root -e 'SELECT 1' >/dev/null 2>&1; then
        log "starting MariaDB"
        as_root service mariadb start >&2 || as_root /etc/init.d/mariadb start >&2
    fi
    wait_for_port "$mysql_host" "$mysql_port" MariaDB
    mysql_root >&2 <<SQL
CREATE USER IF NOT EXISTS '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_password';
CREATE USER IF NOT EXISTS '$admin_user'@'localhost' IDENTIFIED BY '$admin_password';
ALTER USER '$admin_user'@'127.0.0.1' IDENTIFIED BY '$admin_password';
ALTER USER '$admin_user'@'localhost' IDENTIFIED BY '$admin_password';
GRANT ALL PRIVILEGES ON *.* TO '$admin_user'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$admin_user'@'localhost' WITH GRANT OPTION;
-- A password plugin stronger than mysql_native_password, so the
-- native_password finding has something to compare with (tests/probes).
INSTALL PLUGIN IF NOT EXISTS ed25519 SONAME 'auth_ed25519';
SQL
}

# Builds etcd and kube-apiserver once per pinned release and source change.
build_control_plane() {
    local module=$repo/scripts/controlplane
    local version stamp
    version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { print $2; exit }' "$module/go.mod")
    [ -n "$version" ] || die "no k8s.io/kubernetes version in $module/go.mod"
    stamp=$(cat "$module/go.mod" "$module/go.sum" "$module"/cmd/*/main.go | sha256sum | cut -c1-12)
    assets=$cache/controlplane/$version-$stamp
    if [ -x "$assets/kube-apiserver" ] && [ -x "$assets/etcd" ] && [ -x "$assets/kubectl" ]; then
        log "kube-apiserver, etcd and kubectl $version: cached in $assets"
        return
    fi
    log "building kube-apiserver, etcd and kubectl for Kubernetes $version (first run only; a few minutes)"
    local minor=${version#v1.}; minor=${minor%%.*}
    local ldflags="-s -w"
    ldflags+=" -X k8s.io/component-base/version.gitVersion=$version"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
    ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$version"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitMinor=$minor"
    mkdir -p "$assets.tmp"
    # providerless: leave out the in-tree cloud providers nobody here uses.
    (cd "$module" && go build -mod=readonly -tags providerless -trimpath -ldflags "$ldflags" \
        -o "$assets.tmp/" ./cmd/kube-apiserver ./cmd/etcd ./cmd/kubectl) >&2
    rm -rf "$assets" && mv "$assets.tmp" "$assets"
}

# helm renders the chart in the tests; pinned here, built from the module proxy.
helm_version=v4.3.1

build_helm() {
    helm_bin=$cache/helm/$helm_version/helm
    if [ -x "$helm_bin" ]; then
        log "helm $helm_version: cached"
        return
    fi
    log "building helm $helm_version (first run only; a few minutes)"
    mkdir -p "$cache/helm/$helm_version.tmp"
    GOBIN=$cache/helm/$helm_version.tmp go install -trimpath -ldflags "-s -w" "helm.sh/helm/v4/cmd/helm@$helm_version" >&2
    rm -rf "$cache/helm/$helm_version" && mv "$cache/helm/$helm_version.tmp" "$cache/helm/$helm_version"
}

# kube-score lints the rendered chart in tests/chart (against the allow-list
# charts/dbfleet/kube-score-exceptions); pinned and built like helm.
kube_score_version=v1.20.0

build_kube_score() {
    kube_score_bin=$cache/kube-score/$kube_score_version/kube-score
    if [ -x "$kube_score_bin" ]; then
        log "kube-score $kube_score_version: cached"
        return
    fi
    log "building kube-score $kube_score_version (first run only; about a minute)"
    mkdir -p "$cache/kube-score/$kube_score_version.tmp"
    GOBIN=$cache/kube-score/$kube_score_version.tmp go install -trimpath \
        -ldflags "-s -w -X main.version=$kube_score_version" \
        "github.com/zegl/kube-score/cmd/kube-score@$kube_score_version" >&2
    rm -rf "$cache/kube-score/$kube_score_version" &&
        mv "$cache/kube-score/$kube_score_version.tmp" "$cache/kube-score/$kube_score_version"
}

install_packages
start_postgres
configure_postgres_tls
bash "$repo/scripts/replicas.sh" prepare
start_mariadb
replica_exports=$(bash "$repo/scripts/replicas.sh" up)
build_control_plane
build_helm
build_kube_score

cat <<EOF
export KUBEBUILDER_ASSETS='$assets'
export DBFLEET_HELM='$helm_bin'
export DBFLEET_KUBE_SCORE='$kube_score_bin'
export DBFLEET_TEST_POSTGRES_HOST='$pg_host'
export DBFLEET_TEST_POSTGRES_PORT='$pg_port'
export DBFLEET_TEST_POSTGRES_USER='$admin_user'
export DBFLEET_TEST_POSTGRES_PASSWORD='$admin_password'
export DBFLEET_TEST_POSTGRES_CA='$pg_ca'
export DBFLEET_TEST_MYSQL_HOST='$mysql_host'
export DBFLEET_TEST_MYSQL_PORT='$mysql_port'
export DBFLEET_TEST_MYSQL_USER='$admin_user'
export DBFLEET_TEST_MYSQL_PASSWORD='$admin_password'
$replica_exports
EOF
