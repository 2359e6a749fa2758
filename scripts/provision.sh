#!/usr/bin/env bash
# provision.sh — make the databases and tools the test suite requires available
# on loopback, then print the environment the tests read (eval "$(scripts/provision.sh)").
#
# As root on Debian it installs PostgreSQL, MariaDB, Chromium (the dashboard's
# browser tests), promtool and the prometheus server (Debian's prometheus
# package: the canary's figures on Kubernetes are tested against a server the
# test starts) and runc (the local
# runtime's containers, as root) from apt when absent, and starts the databases when they are not running (there is no
# systemd here). Otherwise it expects FERRY_TEST_POSTGRES_URL,
# FERRY_TEST_MYSQL_URL, FERRY_TEST_CHROMIUM, FERRY_TEST_PROMTOOL and
# FERRY_TEST_PROMETHEUS to be set (or prometheus on PATH) and only checks
# that the databases answer. The cosign CLI (the signature
# tests run the real one) is built from its Go module into
# $FERRY_CACHE/bin (/var/cache/ferry/bin) once and reused, unless
# FERRY_TEST_COSIGN names one. Idempotent: a second run reuses what the
# first set up. As root it also installs the packages of the test cluster's
# real node (containerd, runc, CNI plugins, iptables, conntrack; see
# scripts/k8s-node). Progress goes to stderr; only the exports go to stdout.
set -euo pipefail

log() { printf 'provision: %s\n' "$*" >&2; }
die() { printf 'provision: error: %s\n' "$*" >&2; exit 1; }

PG_URL_DEFAULT='postgres://ferry:ferry@127.0.0.1:5432/postgres?sslmode=disable'
MY_URL_DEFAULT='mysql://ferry:ferry@127.0.0.1:3306/'

apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then
		log "apt-get update"
		apt-get update -qq >&2 || die "apt-get update failed"
		apt_updated=1
	fi
	log "apt-get install $*"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2 || die "apt-get install $* failed"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
	local secs=$1 what=$2; shift 2
	for _ in $(seq 1 $((secs * 10))); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	die "$what did not become ready within ${secs}s"
}

provision_postgres() {
	if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
		apt_install postgresql postgresql-client
	fi
	local ver
	ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
	if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main"' | grep -q .; then
		log "creating PostgreSQL $ver cluster"
		pg_createcluster "$ver" main >&2
	fi
	if ! pg_lsclusters -h | awk -v v="$ver" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
		log "starting PostgreSQL $ver on 127.0.0.1:5432"
		pg_ctlcluster "$ver" main start -o "-c listen_addresses=127.0.0.1" >&2 || die "PostgreSQL did not start; see /var/log/postgresql/"
	fi
	wait_for 30 PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
	su postgres -c "psql -qtA -c \"SELECT 1 FROM pg_roles WHERE rolname='ferry'\"" | grep -q 1 ||
		su postgres -c "psql -q -c \"CREATE ROLE ferry LOGIN PASSWORD 'ferry' CREATEDB\"" >&2
	su postgres -c "psql -qtA -c \"SELECT 1 FROM pg_database WHERE datname='ferry'\"" | grep -q 1 ||
		su postgres -c "psql -q -c 'CREATE DATABASE ferry OWNER ferry'" >&2
}

provision_mariadb() {
	if ! command -v mariadbd >/dev/null 2>&1; then
		apt_install mariadb-server mariadb-client
	fi
	if ! mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
		log "starting MariaDB on 127.0.0.1:3306"
		[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2
		install -d -o mysql -g mysql /run/mysqld
		nohup mariadbd --user=mysql --bind-address=127.0.0.1 --port=3306 \
			--socket=/run/mysqld/mysqld.sock >/var/log/ferry-mariadb.log 2>&1 &
		wait_for 60 MariaDB mariadb-admin --protocol=socket ping
	fi
	mariadb --protocol=socket -e "CREATE USER IF NOT EXISTS 'ferry'@'127.0.0.1' IDENTIFIED BY 'ferry';
		CREATE USER IF NOT EXISTS 'ferry'@'localhost' IDENTIFIED BY 'ferry';
		GRANT ALL PRIVILEGES ON *.* TO 'ferry'@'127.0.0.1';
		GRANT ALL PRIVILEGES ON *.* TO 'ferry'@'localhost';
		CREATE DATABASE IF NOT EXISTS ferry;" >&2
}

provision_tools() {
	local want=()
	command -v chromium >/dev/null 2>&1 || want+=(chromium)
	if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
		want+=(prometheus)
	fi
	command -v runc >/dev/null 2>&1 || want+=(runc)
	if [ "${#want[@]}" -gt 0 ]; then
		apt_install "${want[@]}"
	fi
	# The prometheus package starts nothing here (no systemd): promtool is
	# run, and the prometheus server is started by the test that needs it.
}

# The real Kubernetes node of scripts/k8s-node: containerd (with its CRI
# plugin), runc, the CNI bridge and host-local plugins, and the iptables and
# conntrack tools kube-proxy and the node's teardown use. Nothing is started.
provision_node_packages() {
	local want=()
	command -v containerd >/dev/null 2>&1 || want+=(containerd)
	command -v runc >/dev/null 2>&1 || want+=(runc)
	[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || want+=(containernetworking-plugins)
	command -v iptables >/dev/null 2>&1 || want+=(iptables)
	command -v conntrack >/dev/null 2>&1 || want+=(conntrack)
	if [ "${#want[@]}" -gt 0 ]; then
		apt_install "${want[@]}"
	fi
}

# cosign from the Go module proxy; the version builds with the machine's Go
# (1.26) without a toolchain change. About 10 minutes cold on 2 cores.
COSIGN_VERSION=v2.6.5
provision_cosign() {
	local bin=${FERRY_CACHE:-/var/cache/ferry}/bin
	if [ -x "$bin/cosign" ] && "$bin/cosign" version 2>/dev/null | grep -q "^GitVersion: *${COSIGN_VERSION}$"; then
		FERRY_TEST_COSIGN=$bin/cosign
		return
	fi
	command -v go >/dev/null 2>&1 || die "no go: cannot build cosign"
	mkdir -p "$bin"
	log "building cosign $COSIGN_VERSION into $bin (once)"
	GOBIN=$bin GOTOOLCHAIN=local GOFLAGS=-mod=mod go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" >&2 ||
		die "go install cosign@$COSIGN_VERSION failed"
	FERRY_TEST_COSIGN=$bin/cosign
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
	[ -n "${FERRY_TEST_POSTGRES_URL:-}" ] || { provision_postgres; FERRY_TEST_POSTGRES_URL=$PG_URL_DEFAULT; }
	[ -n "${FERRY_TEST_MYSQL_URL:-}" ] || { provision_mariadb; FERRY_TEST_MYSQL_URL=$MY_URL_DEFAULT; }
	if [ -z "${FERRY_TEST_CHROMIUM:-}" ] || [ -z "${FERRY_TEST_PROMTOOL:-}" ] || [ -z "${FERRY_TEST_PROMETHEUS:-}" ] || ! command -v runc >/dev/null 2>&1; then
		provision_tools
	fi
	provision_node_packages
else
	[ -n "${FERRY_TEST_POSTGRES_URL:-}" ] || die "not root: set FERRY_TEST_POSTGRES_URL (a role that may CREATE DATABASE)"
	[ -n "${FERRY_TEST_MYSQL_URL:-}" ] || die "not root: set FERRY_TEST_MYSQL_URL (a user that may CREATE DATABASE)"
fi
[ -n "${FERRY_TEST_COSIGN:-}" ] || provision_cosign
[ -x "$FERRY_TEST_COSIGN" ] || die "no cosign at $FERRY_TEST_COSIGN"
FERRY_TEST_CHROMIUM=${FERRY_TEST_CHROMIUM:-$(command -v chromium || true)}
FERRY_TEST_PROMTOOL=${FERRY_TEST_PROMTOOL:-$(command -v promtool || true)}
FERRY_TEST_PROMETHEUS=${FERRY_TEST_PROMETHEUS:-$(command -v prometheus || true)}
[ -x "$FERRY_TEST_CHROMIUM" ] || die "no Chromium: install Debian's chromium package or set FERRY_TEST_CHROMIUM"
[ -x "$FERRY_TEST_PROMTOOL" ] || die "no promtool: install Debian's prometheus package or set FERRY_TEST_PROMTOOL"
[ -x "$FERRY_TEST_PROMETHEUS" ] || die "no prometheus server: install Debian's prometheus package or set FERRY_TEST_PROMETHEUS"

printf 'export FERRY_TEST_POSTGRES_URL=%q\n' "$FERRY_TEST_POSTGRES_URL"
printf 'export FERRY_TEST_MYSQL_URL=%q\n' "$FERRY_TEST_MYSQL_URL"
printf 'export FERRY_TEST_CHROMIUM=%q\n' "$FERRY_TEST_CHROMIUM"
printf 'export FERRY_TEST_PROMTOOL=%q\n' "$FERRY_TEST_PROMTOOL"
printf 'export FERRY_TEST_PROMETHEUS=%q\n' "$FERRY_TEST_PROMETHEUS"
printf 'export FERRY_TEST_COSIGN=%q\n' "$FERRY_TEST_COSIGN"
require=postgres,mysql,chromium,promtool,prometheus,cosign
# As root the local runtime runs replicas in containers under runc: its
# tests then fail instead of skipping when root or runc is missing.
if [ "$(id -u)" = 0 ]; then
	command -v runc >/dev/null 2>&1 || die "no runc: install Debian's runc package"
	require=$require,root,runc
fi
printf 'export FERRY_TEST_REQUIRE=%q\n' "$require"
