#!/usr/bin/env bash
# PostgreSQL's commit rate on this machine, for docs/capacity.md.
#
#   bench/pg_commit_rate.sh
#   DURATION=5 CLIENTS="1 16" CASES="simple lifecycle" SYNC_MODES=on bench/pg_commit_rate.sh
#
# Starts a throwaway PostgreSQL 15 (durable: fsync, full_page_writes and synchronous_commit
# at their defaults) in a fresh folder on a free port, runs pgbench for every case, number
# of clients and synchronous_commit setting, prints one table, then stops the server and
# removes its folder. Run as root, the server runs as the `postgres` user (PostgreSQL
# refuses root); otherwise as the current user.
#
# Cases (pgbench -M prepared, -j THREADS, DURATION seconds each, after a CHECKPOINT):
#   simple        pgbench's built-in simple-update (-N): 1 commit per transaction
#   tpcb          pgbench's built-in TPC-B-like: 1 commit per transaction
#   lifecycle     one showdist lock + issue lifecycle as persistence/pg_moves.py writes it:
#                 4 statements, each its own commit (NEW insert + history; LOCKED with the
#                 period's FOR SHARE, history, receivable flow; FIXING + history; FIXED with
#                 2 tickets, history, settlement flow). No callback_url, as bench.lifecycle.
#   lifecycle_cb  the same with a callback_url: an outbox row in each of the 3 later moves,
#                 and the courier's lease and delivered UPDATEs for each (10 commits)
# "tps" is pgbench's transactions (script runs) per second; "commits/s" multiplies it by
# the commits of one run. CPU is read from /proc: the server's processes (postmaster, its
# children, and the children it reaped) and pgbench's own (bash's `time`). WAL is
# pg_current_wal_lsn() before and after, per pgbench transaction; each run starts right after
# a CHECKPOINT, so its first write of every page is a full-page image (short runs write more).
# The last line checks that every move wrote its rows and gives the tables' bytes per order.
#
# Settings: PG_BIN, DURATION (20), CLIENTS ("1 8 16 32"), SYNC_MODES ("on off"),
# CASES ("simple tpcb lifecycle lifecycle_cb"), THREADS (2), SCALE (32: at least the
# largest client count, so TPC-B's branch rows are not the bottleneck), PARENT (/var/tmp:
# where the data folder goes; not a tmpfs, or fsync costs nothing), FSYNC_TEST (1: run
# pg_test_fsync for 2 s per method first), KEEP_LOGS (0).
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
DURATION=${DURATION:-20}
CLIENTS=${CLIENTS:-"1 8 16 32"}
SYNC_MODES=${SYNC_MODES:-"on off"}
CASES=${CASES:-"simple tpcb lifecycle lifecycle_cb"}
THREADS=${THREADS:-2}
SCALE=${SCALE:-32}
PARENT=${PARENT:-/var/tmp}
FSYNC_TEST=${FSYNC_TEST:-1}
KEEP_LOGS=${KEEP_LOGS:-0}
PG_USER=postgres
PERIOD=$(date -u +%F)
TICK=$(getconf CLK_TCK)

[[ -x $PG_BIN/pg_ctl && -x $PG_BIN/pgbench ]] || {
	echo "no pg_ctl/pgbench in $PG_BIN (set PG_BIN)" >&2
	exit 1
}

# As the server's user: `postgres` through runuser when we are root.
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u "$PG_USER" -- "$@"
	else
		"$@"
	fi
}

free_port() {
	local p
	for ((p = 54330 + RANDOM % 1000; p < 65000; p++)); do
		if ! (: </dev/tcp/127.0.0.1/"$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port" >&2
	exit 1
}

ROOT=$(mktemp -d "$PARENT/pg_commit_rate.XXXXXX")
DATA=$ROOT/data
PORT=$(free_port)
cleanup() {
	if [[ -f $DATA/postmaster.pid ]]; then
		as_pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w >/dev/null 2>&1 || true
	fi
	if [[ $KEEP_LOGS == 1 ]]; then
		echo "logs kept in $ROOT"
	else
		rm -rf "$ROOT"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
[[ $(id -u) -eq 0 ]] && chown "$PG_USER" "$ROOT"
chmod 700 "$ROOT"

as_pg "$PG_BIN/initdb" -D "$DATA" -U "$PG_USER" --auth=trust -E UTF8 --locale=C >"$ROOT/initdb.log"
# Durability at the defaults; only what keeps a 20 s run free of a checkpoint is changed.
cat >>"$DATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$ROOT'
max_connections = 100
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
EOF
as_pg "$PG_BIN/pg_ctl" start -D "$DATA" -l "$ROOT/postgres.log" -w -t 60 >/dev/null
POSTMASTER=$(head -1 "$DATA/postmaster.pid")

export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=$PG_USER PGDATABASE=bench
psql_q() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql_q -d postgres -c "CREATE DATABASE bench"

echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT, data in $DATA"
echo "host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)," \
	"data on $(df -P "$DATA" | awk 'NR == 2 {print $1}') ($(stat -f -c %T "$DATA"))," \
	"load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %H:%M') UTC"
psql_q -At -c "SELECT 'fsync=' || current_setting('fsync') || ' full_page_writes=' ||
	current_setting('full_page_writes') || ' wal_sync_method=' || current_setting('wal_sync_method') ||
	' synchronous_commit=' || current_setting('synchronous_commit') || ' commit_delay=' ||
	current_setting('commit_delay')"

if [[ $FSYNC_TEST == 1 ]]; then
	echo
	echo "pg_test_fsync, one 8 kB write then a flush (ops/s):"
	as_pg "$PG_BIN/pg_test_fsync" -s 2 -f "$ROOT/fsync.test" 2>&1 |
		awk '/Compare file sync methods using one 8kB write/ {on = 1; next}
			on && /^$/ && seen {on = 0} on && /ops\/sec/ {seen = 1; print "  " $0}'
fi

echo
echo "pgbench -i -s $SCALE ..."
"$PG_BIN/pgbench" -i -q -s "$SCALE" >"$ROOT/init.log" 2>&1

# The tables an order move writes, as persistence/tables.py declares them (same columns,
# keys, foreign keys and indexes), with 20 distributors, 10 suppliers and today's open period.
psql_q <<EOF
CREATE TABLE distributors (id VARCHAR(40) PRIMARY KEY, name VARCHAR(200) NOT NULL);
CREATE TABLE suppliers (id VARCHAR(40) PRIMARY KEY, name VARCHAR(200) NOT NULL);
INSERT INTO distributors SELECT 'dst_' || i, 'd' || i FROM generate_series(1, 20) i;
INSERT INTO suppliers SELECT 'sup_' || i, 's' || i FROM generate_series(1, 10) i;
CREATE TABLE orders (
	id VARCHAR(60) NOT NULL, distributor_id VARCHAR(40) NOT NULL,
	distributor_order_id VARCHAR(128) NOT NULL, supplier_id VARCHAR(40) NOT NULL,
	session_id VARCHAR(40) NOT NULL, tier_id VARCHAR(40) NOT NULL, quantity INTEGER NOT NULL,
	unit_price BIGINT NOT NULL, settlement_price BIGINT NOT NULL, face_value BIGINT NOT NULL,
	currency VARCHAR(3) NOT NULL, status VARCHAR(20) NOT NULL,
	delivery_method VARCHAR(20) NOT NULL, delivery_status VARCHAR(20) NOT NULL,
	buyer JSON NOT NULL, delivery_address TEXT, callback_url TEXT, attendees_sealed TEXT,
	tickets_per_id INTEGER DEFAULT '0' NOT NULL, request_hash VARCHAR(64) NOT NULL,
	lock_expires_at TIMESTAMP WITH TIME ZONE, supplier_lock_ref VARCHAR(120),
	failure_reason TEXT, version INTEGER NOT NULL,
	created_at TIMESTAMP WITH TIME ZONE NOT NULL, updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT pk_orders PRIMARY KEY (id),
	CONSTRAINT uq_orders_distributor_ref UNIQUE (distributor_id, distributor_order_id),
	FOREIGN KEY (distributor_id) REFERENCES distributors (id),
	FOREIGN KEY (supplier_id) REFERENCES suppliers (id));
CREATE INDEX ix_orders_supplier_status ON orders (supplier_id, status);
CREATE INDEX ix_orders_distributor_updated ON orders (distributor_id, updated_at, id);
CREATE INDEX ix_orders_status ON orders (status);
CREATE TABLE order_history (
	id BIGSERIAL PRIMARY KEY, order_id VARCHAR(60) NOT NULL REFERENCES orders (id),
	seq INTEGER NOT NULL, status VARCHAR(20) NOT NULL, at TIMESTAMP WITH TIME ZONE NOT NULL,
	reason TEXT, CONSTRAINT uq_order_history_order_seq UNIQUE (order_id, seq));
CREATE TABLE tickets (
	order_id VARCHAR(60) NOT NULL REFERENCES orders (id), code VARCHAR(120) NOT NULL,
	seat VARCHAR(120), PRIMARY KEY (order_id, code));
CREATE TABLE periods (
	period VARCHAR(10) PRIMARY KEY, status VARCHAR(10) NOT NULL,
	closed_at TIMESTAMP WITH TIME ZONE);
INSERT INTO periods VALUES ('$PERIOD', 'open', NULL);
CREATE TABLE flows (
	id BIGSERIAL PRIMARY KEY, order_id VARCHAR(60) NOT NULL REFERENCES orders (id),
	distributor_id VARCHAR(40) NOT NULL, supplier_id VARCHAR(40) NOT NULL,
	kind VARCHAR(12) NOT NULL, sign INTEGER NOT NULL, refund_no INTEGER NOT NULL,
	amount BIGINT NOT NULL, currency VARCHAR(3) NOT NULL,
	basis_time TIMESTAMP WITH TIME ZONE NOT NULL, basis_period VARCHAR(10) NOT NULL,
	booked_period VARCHAR(10) NOT NULL, created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	CONSTRAINT uq_flows_order_kind_sign UNIQUE (order_id, kind, sign, refund_no));
CREATE INDEX ix_flows_booked_period ON flows (booked_period);
CREATE TABLE outbox (
	id BIGSERIAL PRIMARY KEY, order_id VARCHAR(60) NOT NULL REFERENCES orders (id),
	url TEXT NOT NULL, body TEXT NOT NULL, status VARCHAR(12) NOT NULL,
	attempts INTEGER DEFAULT '0' NOT NULL, next_attempt_at TIMESTAMP WITH TIME ZONE NOT NULL,
	last_error TEXT, created_at TIMESTAMP WITH TIME ZONE NOT NULL,
	delivered_at TIMESTAMP WITH TIME ZONE, distributor_id VARCHAR(40),
	shard INTEGER DEFAULT '0' NOT NULL, dead_at TIMESTAMP WITH TIME ZONE);
CREATE INDEX ix_outbox_shard_due ON outbox (status, shard, next_attempt_at);
CREATE INDEX ix_outbox_order ON outbox (order_id, id);
CREATE INDEX ix_outbox_status_next ON outbox (status, next_attempt_at);
EOF

# One lifecycle's statements, shaped as persistence/pg_moves.py builds them (data-modifying
# CTEs gated on the order row's compare-and-set; rows unnested from arrays). The order id is
# random, as order_id_for's SHA-256 ids are, so the primary key is written all over its index.
# $1 = "cb" adds the callback_url, the outbox rows and the courier's two UPDATEs per message.
lifecycle_sql() {
	local cb=$1 url=NULL
	[[ $cb == cb ]] && url="'https://dist.example/cb'"
	local id="'ord_' || :r"
	local body padding
	padding=$(printf '%0200d' 0)
	body="'{\"event\":\"order.status_changed\",\"order_id\":\"ord_' || :r || '\",\"status\":\"%s\",\"distributor_order_id\":\"B-' || :r || '\",\"at\":\"' || now() || '\",\"tickets\":[],\"delivery_status\":\"NONE\",\"padding\":\"$padding\"}'"
	sql_history() { # seq status
		echo "INSERT INTO order_history (order_id, seq, status, at, reason) SELECT u.order_id, u.seq, u.status, u.at, u.reason FROM moved, unnest(ARRAY[$id]::VARCHAR[], ARRAY[$1]::INTEGER[], ARRAY['$2']::VARCHAR[], ARRAY[now()]::TIMESTAMPTZ[], ARRAY[NULL]::TEXT[]) WITH ORDINALITY AS u(order_id, seq, status, at, reason, n) ORDER BY u.n"
	}
	sql_outbox() { # status
		# shellcheck disable=SC2059 # the body is the format
		echo ", t9 AS (INSERT INTO outbox (order_id, distributor_id, shard, url, body, status, attempts, next_attempt_at, created_at) SELECT u.order_id, u.distributor_id, u.shard, u.url, u.body, u.status, u.attempts, u.next_attempt_at, u.created_at FROM moved, unnest(ARRAY[$id]::VARCHAR[], ARRAY['dst_' || :d]::VARCHAR[], ARRAY[(:r::BIGINT % 256)::INTEGER]::INTEGER[], ARRAY[$url]::TEXT[], ARRAY[$(printf "$body" "$1")]::TEXT[], ARRAY['pending']::VARCHAR[], ARRAY[0]::INTEGER[], ARRAY[now()]::TIMESTAMPTZ[], ARRAY[now()]::TIMESTAMPTZ[]) WITH ORDINALITY AS u(order_id, distributor_id, shard, url, body, status, attempts, next_attempt_at, created_at, n) ORDER BY u.n RETURNING id)"
	}
	sql_flow() { # kind amount
		echo "INSERT INTO flows (order_id, distributor_id, supplier_id, kind, sign, refund_no, amount, currency, basis_time, basis_period, created_at, booked_period) SELECT u.order_id, u.distributor_id, u.supplier_id, u.kind, u.sign, u.refund_no, u.amount, u.currency, u.basis_time, u.basis_period, u.created_at, u.booked_period FROM moved, unnest(ARRAY[$id]::VARCHAR[], ARRAY['dst_' || :d]::VARCHAR[], ARRAY['sup_' || :s]::VARCHAR[], ARRAY['$1']::VARCHAR[], ARRAY[1]::INTEGER[], ARRAY[0]::INTEGER[], ARRAY[$2]::BIGINT[], ARRAY['CNY']::VARCHAR[], ARRAY[now()]::TIMESTAMPTZ[], ARRAY['$PERIOD']::VARCHAR[], ARRAY[now()]::TIMESTAMPTZ[], ARRAY['$PERIOD']::VARCHAR[]) WITH ORDINALITY AS u(order_id, distributor_id, supplier_id, kind, sign, refund_no, amount, currency, basis_time, basis_period, created_at, booked_period, n) ORDER BY u.n ON CONFLICT DO NOTHING"
	}
	local periods="p AS (SELECT period FROM periods WHERE period = ANY(ARRAY['$PERIOD']::VARCHAR[]) AND status = 'open' ORDER BY period FOR SHARE), "
	sql_update() { # version status delivery lock_expiry lock_ref gated
		local gate=""
		[[ $6 == gated ]] && gate=" AND (SELECT count(*) FROM p) = cardinality(ARRAY['$PERIOD']::VARCHAR[])"
		echo "moved AS (UPDATE orders SET version = $(($1 + 1)), status = '$2', delivery_status = '$3', lock_expires_at = $4, supplier_lock_ref = $5, failure_reason = NULL, updated_at = now() WHERE id = $id AND version = $1$gate RETURNING id)"
	}
	# The final SELECT, and the courier's lease and delivery of the move's message.
	sql_final() { # p: the move holds the period
		local days=0
		[[ $1 == p ]] && days="(SELECT count(*) FROM p)"
		if [[ $cb == cb ]]; then
			echo "SELECT (SELECT count(*) FROM moved) AS moved, $days AS days, (SELECT id FROM t9) AS mid"
			printf '%s\n' '\gset'
			echo "UPDATE outbox SET next_attempt_at = now() + interval '15 seconds' WHERE id = :mid AND status = 'pending' AND attempts = 0 AND next_attempt_at <= now();"
			echo "UPDATE outbox SET status = 'delivered', delivered_at = now(), attempts = attempts + 1 WHERE id = :mid AND status = 'pending' AND attempts = 0;"
		else
			echo "SELECT (SELECT count(*) FROM moved), $days;"
		fi
	}
	local ob_locked="" ob_fixing="" ob_fixed=""
	if [[ $cb == cb ]]; then
		ob_locked=$(sql_outbox LOCKED)
		ob_fixing=$(sql_outbox FIXING)
		ob_fixed=$(sql_outbox FIXED)
	fi
	cat <<EOF
\set r random(1, 9000000000000000000)
\set d random(1, 20)
\set s random(1, 10)
WITH moved AS (INSERT INTO orders (id, distributor_id, distributor_order_id, supplier_id, session_id, tier_id, quantity, unit_price, settlement_price, face_value, currency, status, delivery_method, delivery_status, buyer, delivery_address, callback_url, attendees_sealed, tickets_per_id, request_hash, lock_expires_at, supplier_lock_ref, failure_reason, version, created_at, updated_at) VALUES ($id, 'dst_' || :d, 'B-' || :r, 'sup_' || :s, 'ses_4f0c2a9d1e7b3c5a8d6e', 'tir_9a1b2c3d4e5f60718293', 2, 38000, 30000, 48000, 'CNY', 'NEW', 'ETICKET', 'NONE', '{"name": "Zhang San", "phone": "13800000000"}', NULL, $url, NULL, 0, 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', NULL, NULL, NULL, 0, now(), now()) RETURNING id), t0 AS ($(sql_history 0 NEW)) SELECT (SELECT count(*) FROM moved), 0;
WITH ${periods}$(sql_update 0 LOCKED NONE "now() + interval '15 minutes'" "'LOCK-' || :r" gated), t0 AS ($(sql_history 1 LOCKED)), t1 AS ($(sql_flow receivable 76000))$ob_locked $(sql_final p)
WITH $(sql_update 1 FIXING NONE "now() + interval '15 minutes'" "'LOCK-' || :r" plain), t0 AS ($(sql_history 2 FIXING))$ob_fixing $(sql_final none)
WITH ${periods}$(sql_update 2 FIXED DELIVERED "now() + interval '15 minutes'" "'LOCK-' || :r" gated), t0 AS (INSERT INTO tickets (order_id, code, seat) SELECT u.order_id, u.code, u.seat FROM moved, unnest(ARRAY[$id, $id]::VARCHAR[], ARRAY['C-1-' || :r, 'C-2-' || :r]::VARCHAR[], ARRAY['A-1', 'A-2']::VARCHAR[]) WITH ORDINALITY AS u(order_id, code, seat, n) ORDER BY u.n), t1 AS ($(sql_history 3 FIXED)), t2 AS ($(sql_flow settlement 60000))$ob_fixed $(sql_final p)
EOF
}
lifecycle_sql plain >"$ROOT/lifecycle.sql"
lifecycle_sql cb >"$ROOT/lifecycle_cb.sql"

# Warm-up: a few thousand orders, then statistics, so that the prepared statements' generic
# plans (chosen after five runs) are made for tables that are not empty; on empty ones they
# would scan orders and outbox instead of using the primary key until autovacuum analyzes.
echo "warm-up: lifecycle_cb, 5 s ..."
"$PG_BIN/pgbench" -n -M prepared -c 4 -j 2 -T 5 -f "$ROOT/lifecycle_cb.sql" >"$ROOT/warmup.log" 2>&1
psql_q -c "VACUUM ANALYZE orders, order_history, tickets, flows, outbox, periods"

# CPU ticks of the server so far: the postmaster, its live children, and the children it
# has reaped (its cutime and cstime).
pg_ticks() {
	# (A process may exit between the glob and the read: cat then fails, which is no error.)
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pm="$POSTMASTER" '{
		pid = $1; s = $0; sub(/^[^)]*\) /, "", s); split(s, f, " ")
		if (pid == pm) t += f[12] + f[13] + f[14] + f[15]; else if (f[2] == pm) t += f[12] + f[13]
	} END { print t + 0 }'
}

commits_of() {
	case $1 in
	lifecycle) echo 4 ;;
	lifecycle_cb) echo 10 ;;
	*) echo 1 ;;
	esac
}

ROWS=()
run_case() { # case sync clients
	local kase=$1 sync=$2 clients=$3 args=() threads=$THREADS
	((threads > clients)) && threads=$clients
	case $kase in
	simple) args=(-N) ;;
	tpcb) args=() ;;
	lifecycle | lifecycle_cb)
		args=(-n -f "$ROOT/$kase.sql")
		psql_q -c "VACUUM ANALYZE orders, order_history, tickets, flows, outbox, periods"
		;;
	*)
		echo "unknown case $kase" >&2
		exit 1
		;;
	esac
	psql_q -c "CHECKPOINT"
	local out=$ROOT/run-$kase-$sync-$clients.log load t0 t1 cpu w0 w1
	load=$(cut -d' ' -f1 /proc/loadavg)
	w0=$(psql_q -At -c "SELECT pg_current_wal_lsn()")
	t0=$(pg_ticks)
	local TIMEFORMAT='%U %S'
	cpu=$({ time PGOPTIONS="-c synchronous_commit=$sync" "$PG_BIN/pgbench" -M prepared \
		-c "$clients" -j "$threads" -T "$DURATION" "${args[@]}" >"$out" 2>&1; } 2>&1) || {
		echo "pgbench failed ($kase, synchronous_commit=$sync, c=$clients):" >&2
		tail -20 "$out" >&2
		exit 1
	}
	sleep 0.5 # the backends exit and are reaped
	t1=$(pg_ticks)
	w1=$(psql_q -At -c "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$w0')::bigint")
	local tps lat xacts failed
	tps=$(awk '/^tps = / {print $3}' "$out")
	lat=$(awk '/^latency average/ {print $4}' "$out")
	xacts=$(awk '/^number of transactions actually processed/ {print $NF}' "$out")
	failed=$(awk '/^number of failed transactions/ {print $5}' "$out")
	ROWS+=("$(awk -v k="$kase" -v s="$sync" -v c="$clients" -v tps="$tps" -v lat="$lat" \
		-v n="$xacts" -v f="${failed:-0}" -v per="$(commits_of "$kase")" -v pg=$((t1 - t0)) \
		-v cpu="$cpu" -v tick="$TICK" -v d="$DURATION" -v load="$load" -v wal="$w1" 'BEGIN {
			split(cpu, u, " "); commits = n * per
			printf "%-12s %-4s %3d %9.0f %10.0f %8.2f %7.2f %9.1f %9.1f %8.0f %6s %s", k, s, c, tps, tps * per,
				lat, pg / tick / d, 1e6 * pg / tick / commits, 1e6 * (u[1] + u[2]) / commits,
				wal / n, load, f
		}')")
	echo "${ROWS[-1]}"
}

echo
HEADER=$(printf "%-12s %-4s %3s %9s %10s %8s %7s %9s %9s %8s %6s %s" case sync c tps commits/s \
	"lat ms" "PG cpu" "PG us/c" "pgb us/c" "WAL B/tx" load failed)
echo "$HEADER"
for kase in $CASES; do
	for sync in $SYNC_MODES; do
		for c in $CLIENTS; do
			run_case "$kase" "$sync" "$c"
		done
	done
done

echo
echo "Summary ($DURATION s a run, -j $THREADS, -M prepared, scale $SCALE; tps = pgbench" \
	"transactions/s; commits/s = tps x commits per transaction (lifecycle 4, lifecycle_cb 10);"
echo "PG cpu = server cores busy on average; PG us/c and pgb us/c = server and pgbench CPU per" \
	"commit in microseconds; WAL B/tx = WAL bytes per pgbench transaction; load = 1-min load" \
	"average at the start):"
echo "$HEADER"
printf '%s\n' "${ROWS[@]}"
echo
# Every move wrote its rows: per order 4 history rows, 2 tickets, 2 flows (and 3 outbox rows,
# delivered, for the lifecycle_cb orders).
echo "rows written: $(psql_q -At -c "SELECT (SELECT count(*) FROM orders) || ' orders (' ||
	(SELECT count(*) FROM orders WHERE status = 'FIXED') || ' FIXED), ' ||
	(SELECT count(*) FROM order_history) || ' history, ' || (SELECT count(*) FROM tickets) ||
	' tickets, ' || (SELECT count(*) FROM flows) || ' flows, ' || (SELECT count(*) FROM outbox) ||
	' outbox (' || (SELECT count(*) FROM outbox WHERE status = 'delivered') || ' delivered); ' ||
	'their tables and indexes ' || pg_size_pretty(sum(pg_total_relation_size(t))) || ', ' ||
	(sum(pg_total_relation_size(t)) / (SELECT greatest(count(*), 1) FROM orders))::int ||
	' bytes per order, of which indexes ' ||
	(sum(pg_indexes_size(t)) / (SELECT greatest(count(*), 1) FROM orders))::int ||
	' (orders'' own ' || (pg_indexes_size('orders') / (SELECT greatest(count(*), 1) FROM orders))::int ||
	')' FROM unnest(ARRAY['orders', 'order_history', 'tickets', 'flows', 'outbox']::regclass[]) t")"
