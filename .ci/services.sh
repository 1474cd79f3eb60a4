#!/usr/bin/env bash
# Installs (Debian packages) and starts the real servers the tests use, on
# loopback only, and prints the environment the tests read:
#
#   eval "$(bash .ci/services.sh)"     # then: go test ./...
#
# PostgreSQL on 127.0.0.1:55432, MariaDB on 127.0.0.1:53306 and Redis on
# 127.0.0.1:56379, all under /tmp/loadcap-services (removed and recreated on every call); Chromium is
# only installed (tests start it themselves). Prometheus and nginx are
# installed for the tests that start their own instances with their own
# configs. Idempotent; everything it starts stops with `--stop`; with
# `--install` it only installs the packages.
set -euo pipefail

BASE=/tmp/loadcap-services
PG_PORT=55432
REDIS_PORT=56379
MYSQL_PORT=53306

log() { echo "services: $*" >&2; }

stop() {
	if [ -d "$BASE/pg" ]; then
		su postgres -c "/usr/lib/postgresql/*/bin/pg_ctl -D $BASE/pg -m immediate stop" >/dev/null 2>&1 || true
	fi
	if [ -f "$BASE/mysqlrun/mysqld.pid" ]; then
		pid=$(cat "$BASE/mysqlrun/mysqld.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	if [ -f "$BASE/redis.pid" ]; then
		kill "$(cat "$BASE/redis.pid")" 2>/dev/null || true
	fi
}

if [ "${1:-}" = "--stop" ]; then
	stop
	exit 0
fi

need=()
command -v chromium >/dev/null || need+=(chromium)
command -v redis-server >/dev/null || need+=(redis-server)
command -v prometheus >/dev/null || need+=(prometheus)
command -v nginx >/dev/null || need+=(nginx-light)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mariadbd >/dev/null || need+=(mariadb-server)
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	sudo=""
	[ "$(id -u)" -ne 0 ] && sudo=sudo
	# Debian starts nothing here (policy-rc.d); the tests start their own.
	timeout 600 $sudo apt-get update -qq >&2 || log "apt-get update failed; trying with the cached lists"
	timeout 900 $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
if [ "${1:-}" = "--install" ]; then
	exit 0 # installed only: .ci/run installs while Go compiles
fi

stop
rm -rf "$BASE"
mkdir -p "$BASE"
chmod 755 "$BASE"

# PostgreSQL: a throwaway cluster, trust auth on loopback only.
PGBIN=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")
mkdir -p "$BASE/pg" "$BASE/pgrun"
chown postgres "$BASE/pg" "$BASE/pgrun"
su postgres -c "$PGBIN/initdb -D $BASE/pg -A trust -U postgres --no-sync" >/dev/null
su postgres -c "$PGBIN/pg_ctl -D $BASE/pg -w -t 60 -l $BASE/pgrun/pg.log \
	-o '-c listen_addresses=127.0.0.1 -p $PG_PORT -k $BASE/pgrun -c fsync=off -c max_connections=200' start" >/dev/null
psql -h 127.0.0.1 -p $PG_PORT -U postgres -qc "CREATE DATABASE loadcap" >/dev/null
log "postgres on 127.0.0.1:$PG_PORT"

# MariaDB: a throwaway server, loopback only, no durability, utf8mb4 as
# Debian's own configuration has it (--no-defaults skips that file); root
# over its socket creates the tests' user (a password, to exercise
# USER:PASS) and database.
mkdir -p "$BASE/mysql" "$BASE/mysqlrun"
chown mysql "$BASE/mysql" "$BASE/mysqlrun"
mariadb-install-db --user=mysql --datadir="$BASE/mysql" --auth-root-authentication-method=normal \
	--skip-test-db >"$BASE/mysqlrun/install.log" 2>&1
setsid mariadbd --no-defaults --user=mysql --datadir="$BASE/mysql" --bind-address=127.0.0.1 --port=$MYSQL_PORT \
	--socket="$BASE/mysqlrun/mysqld.sock" --pid-file="$BASE/mysqlrun/mysqld.pid" --log-error="$BASE/mysqlrun/mysqld.log" \
	--skip-name-resolve --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size=64M --max-connections=300 \
	--character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
	</dev/null >/dev/null 2>&1 &
for _ in $(seq 300); do
	mariadb-admin --socket="$BASE/mysqlrun/mysqld.sock" -uroot ping >/dev/null 2>&1 && break
	sleep 0.1
done
mariadb --socket="$BASE/mysqlrun/mysqld.sock" -uroot -e "CREATE DATABASE loadcap;
	CREATE USER loadcap@'127.0.0.1' IDENTIFIED BY 'loadcap'; GRANT ALL ON *.* TO loadcap@'127.0.0.1'"
log "mariadb on 127.0.0.1:$MYSQL_PORT"

# Redis: no persistence, loopback only.
redis-server --bind 127.0.0.1 --port $REDIS_PORT --save '' --appendonly no \
	--daemonize yes --pidfile "$BASE/redis.pid" --logfile "$BASE/redis.log" --dir "$BASE"
for _ in $(seq 50); do
	redis-cli -h 127.0.0.1 -p $REDIS_PORT ping >/dev/null 2>&1 && break
	sleep 0.1
done
log "redis on 127.0.0.1:$REDIS_PORT"

cat <<EOF
export LOADCAP_PG_DSN='postgres://postgres@127.0.0.1:$PG_PORT/loadcap?sslmode=disable'
export LOADCAP_MYSQL_DSN='mysql://loadcap:loadcap@127.0.0.1:$MYSQL_PORT/loadcap'
export LOADCAP_REDIS_ADDR='127.0.0.1:$REDIS_PORT'
export LOADCAP_REQUIRE_PG=1 LOADCAP_REQUIRE_MYSQL=1 LOADCAP_REQUIRE_REDIS=1 LOADCAP_REQUIRE_BROWSER=1 LOADCAP_REQUIRE_PROM=1 LOADCAP_REQUIRE_NGINX=1
EOF
