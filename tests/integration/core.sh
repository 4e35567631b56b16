#!/usr/bin/env bash
# pgwardd core, end to end: a throwaway PostgreSQL 15, pgwardd in front of it, real clients
# (psql, libpq, pgbench) through it. Prints "ok - ..." / "not ok - ..." per check.
# Environment: BUILD (default build), PGWARD_SUITES=0 skips the regression/isolation/pipeline
# differential (tests/integration/suites.sh), which is on by default.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
PGTEST=$BUILD/tests/pgtest

# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"

trap pw_cleanup EXIT
PGTMP_QUIET=1 pgtmp_start core >/dev/null || { echo "not ok - throwaway cluster did not start"; exit 1; }
W=$PGTMP_DIR/pgward
mkdir -p "$W"
pgtmp_cert "$W" pgwardd localhost "DNS:localhost,IP:127.0.0.1" >/dev/null
PORT=$(pw_free_port)
APP_PW=app-secret-$$
APP_VERIFIER=$(printf '%s\n' "$APP_PW" | "$BUILD/pgwardctl" scram verifier)

write_config() { # $1 = file, $2 = extra limits json
	cat >"$1" <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 10,
  "listen": [{"host": "127.0.0.1", "port": $PORT}, {"unix": "$W/.s.PGSQL.$PORT"}],
  "tls": {"cert": "$W/pgwardd.crt", "key": "$W/pgwardd.key"},
  "upstreams": {
    "main":        {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                    "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "verify-full",
                    "ca_file": "$PGTMP_CA"},
    "plain":       {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                    "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"},
    "md5":         {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "pgward_md5",
                    "password_file": "$PGTMP_DIR/pgward_md5.pw", "sslmode": "disable"},
    "clear_tls":   {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "pgward_clear",
                    "password_file": "$PGTMP_DIR/pgward_clear.pw", "sslmode": "require"},
    "clear_plain": {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "pgward_clear",
                    "password_file": "$PGTMP_DIR/pgward_clear.pw", "sslmode": "disable"},
    "badca":       {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                    "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "verify-full",
                    "ca_file": "$W/pgwardd.crt"},
    "pooled":      {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                    "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "require",
                    "reuse_connections": true, "pool_idle_timeout_seconds": 30},
    "pooled_sp":   {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                    "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "require",
                    "reuse_connections": true, "search_path": ["pg_catalog", "public"]},
    "unix":        {"unix_dir": "$PGTMP_SOCKDIR", "port": $PGTMP_PORT, "user": "postgres",
                    "password_file": "$PGTMP_DIR/postgres.pw"}
  },
  "identities": [
    {"name": "app", "match": {"user": "app"}, "auth": "password",
     "scram_verifier": "$APP_VERIFIER", "upstream": "main", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "via-md5", "match": {"application_name": "via-md5"}, "auth": "trust", "upstream": "md5", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "via-clear-tls", "match": {"application_name": "via-clear-tls"}, "auth": "trust", "upstream": "clear_tls", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "via-clear-plain", "match": {"application_name": "via-clear-plain"}, "auth": "trust", "upstream": "clear_plain", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "via-badca", "match": {"application_name": "via-badca"}, "auth": "trust", "upstream": "badca", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "via-pool", "match": {"application_name": "via-pool"}, "auth": "trust", "upstream": "pooled", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "via-pool-sp", "match": {"application_name": "via-pool-sp"}, "auth": "trust", "upstream": "pooled_sp", "rules": [{"action": "allow"}]},
    {"name": "via-pool-sp-all", "match": {"application_name": "via-pool-sp-all"}, "auth": "trust", "upstream": "pooled_sp", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "via-unix", "match": {"application_name": "via-unix"}, "auth": "trust", "upstream": "unix", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "nobody", "match": {"user": "nobody*"}, "auth": "password",
     "scram_verifier": "$APP_VERIFIER", "upstream": "main", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "superuser", "match": {"user": "postgres"}, "auth": "trust", "upstream": "main", "rules": [{"action": "allow"}], "guardrails": {"all": false}}
  ]${2:-}
}
EOF
}
CONF=$W/pgwardd.json
write_config "$CONF"
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || { echo "not ok - pgwardd did not start"; cat "$W/pgwardd.log"; exit 1; }

export PGPASSWORD= PGSSLMODE=prefer PGCONNECT_TIMEOUT=10
CI="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
UCI="host=$W port=$PORT user=postgres dbname=postgres"

# --- psql -------------------------------------------------------------------------------
check "psql over TCP" test "$(psql "$CI" -Atc 'SELECT 40 + 2')" = 42
check "psql over the unix socket" test "$(psql "$UCI" -Atc 'SELECT current_user')" = postgres
check "TLS to pgwardd with sslmode=require" \
	bash -c "psql '$CI sslmode=require' -Atc 'SELECT 1' && psql '$CI sslmode=require' -c '\\conninfo' | grep -q 'SSL connection (protocol: TLSv1.[23]'"
check "TLS to pgwardd with sslmode=verify-full" \
	test "$(psql "host=localhost port=$PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$PGTMP_CA" -Atc 'SELECT 7')" = 7
check "verify-full fails against the wrong name" \
	bash -c "! psql 'host=127.0.0.2 port=$PORT user=postgres dbname=postgres sslmode=verify-full sslrootcert=$PGTMP_CA' -Atc 'SELECT 1' 2>/dev/null"
check "upstream over TLS verify-full (ssl_is_used on the server)" \
	test "$(psql "$CI" -Atc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()')" = t

# \copy in and out, byte for byte
seq 1 50000 | awk '{printf "%d\tname %d\t%s\n", $1, $1, ($1 % 7 == 0) ? "\\N" : "x\\ty"}' >"$W/in.tsv"
psql "$CI" -q -c 'DROP TABLE IF EXISTS cp' -c 'CREATE TABLE cp(a int, b text, c text)' >/dev/null
check "psql \\copy in" psql "$CI" -q -c "\\copy cp FROM '$W/in.tsv'"
check "psql \\copy out is byte-identical" bash -c "psql '$CI' -q -c \"\\copy (SELECT * FROM cp ORDER BY a) TO '$W/out.tsv'\" && cmp '$W/in.tsv' '$W/out.tsv'"

# client SCRAM authentication against the configured verifier
check "client SCRAM login with the right password" \
	test "$(PGPASSWORD=$APP_PW psql "host=127.0.0.1 port=$PORT user=app dbname=postgres" -Atc 'SELECT session_user')" = postgres
out=$(PGPASSWORD=wrong psql "host=127.0.0.1 port=$PORT user=app dbname=postgres" -Atc 'SELECT 1' 2>&1)
check "wrong password refused with 28P01" \
	bash -c "grep -q 'password authentication failed for user \"app\"' <<<'$out' && grep -q 'FATAL 28P01' '$W/pgwardd.log'"
out=$(psql "host=127.0.0.1 port=$PORT user=stranger dbname=postgres" -Atc 'SELECT 1' 2>&1)
check "no identity: FATAL names what was seen" grep -q 'no identity matches user "stranger"' <<<"$out"

# upstream authentication methods
check "upstream MD5 login" test "$(psql "$CI application_name=via-md5" -Atc 'SELECT current_user')" = pgward_md5
check "upstream cleartext password over TLS" test "$(psql "$CI application_name=via-clear-tls" -Atc 'SELECT current_user')" = pgward_clear
out=$(psql "$CI application_name=via-clear-plain" -Atc 'SELECT 1' 2>&1)
check "upstream cleartext over plain TCP refused" grep -q 'allow_cleartext' <<<"$out"
out=$(psql "$CI application_name=via-badca" -Atc 'SELECT 1' 2>&1)
check "upstream verify-full with the wrong CA refused" grep -q 'TLS handshake failed' <<<"$out"
check "upstream over a unix socket" test "$(psql "$CI application_name=via-unix" -Atc "SELECT coalesce(inet_client_addr()::text, 'local')")" = local
check "startup options pass through" test "$(psql "$CI options='-c search_path=pg_catalog,public -c work_mem=3MB'" -Atc 'SHOW work_mem')" = 3MB

# connection reuse: a parked upstream connection serves the next client, reset to a clean state.
# Pools are per worker (two here), so ten clients in a row need at most two backends.
PCI="$CI application_name=via-pool"
pids=()
for i in 1 2 3 4 5 6 7 8 9 10; do
	pids+=("$(psql "$PCI" -Atc 'SELECT pg_backend_pid()')")
	sleep 0.2 # let the reset (DISCARD ALL) finish before the next client
done
distinct=$(printf '%s\n' "${pids[@]}" | sort -u | wc -l)
check "reuse: ten clients in a row are served by $distinct backend(s) (at most one per worker)" \
	test "$distinct" -le 2
p1=$(psql "$PCI" -Atc "SET work_mem = '7MB'; CREATE TEMP TABLE tt(x int); PREPARE p AS SELECT 1; SELECT pg_advisory_lock(42); LISTEN chan; SELECT pg_backend_pid()" | tail -1)
out=
for i in 1 2 3 4 5 6 7 8 9 10; do
	sleep 0.2
	out=$(psql "$PCI" -At -c "SELECT pg_backend_pid()" -c "SHOW work_mem" \
		-c "SELECT count(*) FROM pg_prepared_statements" -c "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'" \
		-c "SELECT count(*) FROM pg_listening_channels()" -c "SELECT to_regclass('pg_temp.tt') IS NULL" | tr '\n' ' ')
	[[ ${out%% *} = "$p1" ]] && break
done
check "reuse: a later client gets the parked backend $p1 back" test "${out%% *}" = "$p1"
check "reuse: its session state is reset (GUC, prepared, advisory lock, LISTEN, temp table): $out" \
	test "${out#* }" = "4MB 0 0 0 t "
p2=$(psql "$PCI" -At 2>/dev/null <<<"BEGIN; SELECT pg_backend_pid();" | tail -1)
gone() { for i in $(seq 50); do [[ $(pgtmp_psql -Atc "SELECT count(*) FROM pg_stat_activity WHERE pid = $1") = 0 ]] && return 0; sleep 0.1; done; return 1; }
check "reuse: a client that leaves inside a transaction does not park its backend ($p2 ends)" gone "$p2"
run_tap "$PGTEST" cancel "$PCI"
# an upstream whose set-up imposes a search_path: DISCARD ALL would undo it, so its
# connections are not parked (a later client would run under another search_path than the one
# its statements are judged against)
for app in via-pool-sp via-pool-sp-all; do
	sp=()
	for i in 1 2 3; do
		sp+=("$(psql "$CI application_name=$app" -Atc 'SHOW search_path' -c 'SELECT pg_backend_pid()' | tr '\n' ' ')")
		sleep 0.2
	done
	check "reuse ($app): an imposed search_path holds for every client (${sp[*]})" \
		test "$(printf '%s\n' "${sp[@]}" | cut -d' ' -f1-2 | sort -u)" = "pg_catalog, public"
	check "reuse ($app): and such a connection is not parked (three backends)" \
		test "$(printf '%s\n' "${sp[@]}" | cut -d' ' -f3 | sort -u | wc -l)" = 3
done

# --- libpq ------------------------------------------------------------------------------
for t in extended pipeline cancel notify; do
	run_tap "$PGTEST" "$t" "$CI"
done
run_tap "$PGTEST" copy "$CI" 100000
run_tap "$PGTEST" limit "$CI" 1048576
run_tap "$PGTEST" malformed "$CI" 127.0.0.1 "$PORT" postgres postgres
# (ASan keeps freed memory in quarantine: its builds get a larger bound)
hwm_limit=100000
[[ $BUILD = */san ]] && hwm_limit=600000
check "pgwardd memory stays small after 64 MiB and 200 MB messages (VmHWM $(pw_hwm_kb) kB < $hwm_limit)" \
	test "$(pw_hwm_kb)" -lt "$hwm_limit"

# --- pgbench ------------------------------------------------------------------------------
check "pgbench -i" pgbench -i -q -s 2 "$CI"
for m in simple extended prepared; do
	check "pgbench -M $m, 8 clients" pgbench -n -M "$m" -c 8 -j 2 -t 300 "$CI"
done
check "pgbench -C (a connection per transaction)" pgbench -n -C -S -c 4 -j 2 -t 100 "$CI"
check "reuse: pgbench -C through parked connections" pgbench -n -C -S -c 4 -j 2 -t 200 "$PCI"
check "pgbench over TLS, 8 clients" pgbench -n -S -c 8 -j 2 -t 500 "$CI sslmode=require"

# --- reload ---------------------------------------------------------------------------------
cp "$CONF" "$W/good.json"
echo '{ "workers": ' >"$CONF"
kill -HUP "$PGWARDD_PID"
check "SIGHUP with a bad file keeps the old configuration" \
	pw_wait_log "$W/pgwardd.log" 'reload failed, keeping the current configuration'
check "still serving after a bad reload" test "$(psql "$CI" -Atc 'SELECT 1')" = 1
write_config "$CONF" ', "limits": {"max_statement_bytes": 100}'
kill -HUP "$PGWARDD_PID"
pw_wait_log "$W/pgwardd.log" 'configuration reloaded' >/dev/null
out=$(psql "$CI" -Atc "SELECT '$(printf 'x%.0s' {1..200})'" 2>&1)
check "SIGHUP applies a good file to new sessions" grep -q 'max_statement_bytes' <<<"$out"
cp "$W/good.json" "$CONF"
kill -HUP "$PGWARDD_PID"

# --- the transparency oracle ----------------------------------------------------------------
if [[ ${PGWARD_SUITES:-1} != 0 ]]; then
	"$here/suites.sh" --direct "127.0.0.1:$PGTMP_PORT" --proxy "127.0.0.1:$PORT" \
		--user postgres --password-file "$PGTMP_DIR/postgres.pw"
	rc=$?
	[[ $rc -eq 0 ]] || echo "not ok - suites.sh exited $rc"
fi

# --- graceful stop ----------------------------------------------------------------------------
psql "$CI" -Atc 'SELECT pg_sleep(2), 1' >"$W/slow.out" 2>&1 &
slow=$!
psql "$CI" >/dev/null 2>&1 <<<"SELECT pg_sleep(30);" &
for i in $(seq 50); do
	[[ $(pgtmp_psql -Atc "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(%'") = 2 ]] && break
	sleep 0.1
done
kill -TERM "$PGWARDD_PID"
sleep 0.3
check "after SIGTERM no new connections are accepted" bash -c "! psql '$CI' -Atc 'SELECT 1' 2>/dev/null"
wait "$slow"
check "a running query finishes during the grace period" grep -q '|1' "$W/slow.out"
t0=$(date +%s)
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "a second SIGTERM ends the grace period at once" test $(($(date +%s) - t0)) -lt 5
check "the unix socket file is removed" test ! -e "$W/.s.PGSQL.$PORT"
# every statement of the run (the suites' included) went through the analyser: the workers'
# summaries count them; unreadable text (the suites' deliberate syntax errors) went to the
# server under the allow-all policy, which answered it as it does directly
judged=$(grep -o 'statements: [0-9]* queries, [0-9]* parses, [0-9]* allowed, [0-9]* denied, [0-9]* unreadable' "$W/pgwardd.log" |
	awk '{ q += $2; p += $4; u += $10 } END { print q + p, u }')
echo "# analyser: $judged (statements judged, of which unreadable) over the whole run"
if [[ ${PGWARD_SUITES:-1} != 0 ]]; then
	# without the suites this run sends no unreadable text at all
	check "the suites' statements went through the analyser (their deliberate syntax errors among them)" \
		test "${judged##* }" -gt 50
fi
finish
