#!/usr/bin/env bash
# pgward benchmark: pgbench against PostgreSQL directly, through pgbouncer and through
# pgwardd, on one throwaway cluster (scripts/pgtmp.sh).  Not a test: it prints a table
# (and writes it as JSON to $BUILD/bench.json).
#
# Every round runs each workload against each target back to back; the table shows the
# median over the rounds.  Environment:
#   BUILD               build directory holding pgwardd (default build)
#   BENCH_ROUNDS        rounds (default 3)
#   BENCH_SECONDS       seconds per pgbench run (default 10)
#   BENCH_SCALE         pgbench scale (default 10)
#   BENCH_MASK          0: skip the masking section (default 1)
#   BENCH_MASK_ROWS     rows of the masking table (default 1000000)
#   BENCH_TARGETS       targets to run, space or comma separated, in the fixed order
#                       direct direct-scram pgbouncer pgwardd pgwardd-NAME...  (default:
#                       all but direct-scram).  direct: PostgreSQL with client auth trust
#                       (role bench), like the proxies' clients; direct-scram: as user
#                       postgres with SCRAM, what a password login costs a direct client
#   BENCH_EXTRA_PGWARDD more pgwardd variants, one a line: "NAME JSON-OBJECT"; the object
#                       is merged into the base configuration (objects key by key, the
#                       rest replaced; the upstream is "pg", the identity "bench") and
#                       the variant runs as target "pgwardd-NAME", e.g.
#                         BENCH_EXTRA_PGWARDD='1worker {"workers": 1}'
#
# Adding a target kind: write target_KIND NAME [ARG] that starts it (once) and sets
# T_CONN[NAME] (libpq conninfo for pgbench), T_PIDS[NAME] (pids whose CPU time counts as
# proxy CPU; empty for none) and T_NOTE[NAME], then list it in candidate_targets.
#
# Exit status: 0 when every run succeeded, 1 when some run failed (its row says so),
# 2 on bad usage.  Everything started here is stopped on exit.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$top/$BUILD
export BUILD

ROUNDS=${BENCH_ROUNDS:-3}
SECS=${BENCH_SECONDS:-10}
SCALE=${BENCH_SCALE:-10}

# shellcheck source=pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib-pgwardd.sh
source "$top/scripts/lib-pgwardd.sh"

# Workloads: label and pgbench arguments (besides -n -T SECS and the conninfo).
W_LABEL=("-S simple, 1 client" "-S simple, 8 clients" "-S prepared, 1 client"
	"-S prepared, 8 clients" "-S -C, 8 clients")
W_ARGS=("-S -c 1 -j 1" "-S -c 8 -j 2" "-S -M prepared -c 1 -j 1"
	"-S -M prepared -c 8 -j 2" "-S -C -c 8 -j 2")

declare -A T_CONN=() T_PIDS=() T_NOTE=() T_LOG=() T_PREFIX=()
BENCH_CGROUPS=()
TARGETS=()
BOUNCER_PID=""
WORK=""
CLK_TCK=$(getconf CLK_TCK)

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: error: %s\n' "$*" >&2
	exit 1
}

cleanup() {
	if [[ -n $BOUNCER_PID ]]; then
		kill -INT "$BOUNCER_PID" 2>/dev/null || true # SIGINT: pgbouncer's "safe shutdown"
		local i
		for ((i = 0; i < 50; i++)); do
			kill -0 "$BOUNCER_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$BOUNCER_PID" 2>/dev/null || true
		wait "$BOUNCER_PID" 2>/dev/null || true
		BOUNCER_PID=""
	fi
	pgw_stop_all
	local cg root
	root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
	for cg in "${BENCH_CGROUPS[@]}"; do
		while read -r p; do echo "$p" >"$root/cgroup.procs" 2>/dev/null; done <"$cg/cgroup.procs" 2>/dev/null
		rmdir "$cg" 2>/dev/null || true
	done
}

conninfo() { # port [user]
	printf 'host=127.0.0.1 port=%s user=%s dbname=postgres sslmode=disable' "$1" "${2:-postgres}"
}

# Run a command as the cluster's OS user when root (pgbouncer refuses to run as root).
# setpriv execs, so the pid of a background job is the command's own pid.
as_pg_user() {
	if [[ $EUID -eq 0 ]]; then
		exec setpriv --reuid="${PGTMP_OS_USER:-postgres}" --regid="${PGTMP_OS_USER:-postgres}" \
			--init-groups -- "$@"
	fi
	exec "$@"
}

# --- targets ---------------------------------------------------------------------------

# The baseline: PostgreSQL over TCP with client authentication "trust", as the proxies'
# clients get, so that every target's clients pay the same for logging in.  A role of its
# own (pg_hba: host all bench 127.0.0.1/32 trust) keeps the proxies' upstream logins SCRAM.
target_direct() { # NAME
	T_CONN[$1]=$(conninfo "$PGTMP_PORT" bench)
	T_PIDS[$1]=""
	T_NOTE[$1]="PostgreSQL over TCP 127.0.0.1, role bench, client auth trust"
}

# What a client connecting straight to PostgreSQL with a password pays (not run by default).
target_direct_scram() { # NAME
	T_CONN[$1]=$(conninfo "$PGTMP_PORT")
	T_PIDS[$1]=""
	T_NOTE[$1]="PostgreSQL over TCP 127.0.0.1, role postgres, SCRAM (password from a pgpass file)"
}

target_pgbouncer() { # NAME
	command -v pgbouncer >/dev/null || die "pgbouncer is not installed (scripts/deps.sh)"
	local dir=$WORK/pgbouncer port user=${PGTMP_OS_USER:-postgres}
	port=$(pgw_free_port)
	mkdir -p "$dir"
	(umask 077 && printf '"postgres" "%s"\n' "$(cat "$PGTMP_DIR/postgres.pw")" >"$dir/users.txt")
	cat >"$dir/pgbouncer.ini" <<-EOF
		; written by pgward scripts/bench.sh
		[databases]
		postgres = host=127.0.0.1 port=$PGTMP_PORT dbname=postgres user=postgres

		[pgbouncer]
		listen_addr = 127.0.0.1
		listen_port = $port
		unix_socket_dir =
		pool_mode = session
		; clients: trust, as pgwardd's bench identity; the server login uses the
		; plain-text password of auth_file (SCRAM toward PostgreSQL)
		auth_type = trust
		auth_file = $dir/users.txt
		max_client_conn = 1000
		default_pool_size = 100
		max_db_connections = 0
		client_tls_sslmode = disable
		server_tls_sslmode = disable
		ignore_startup_parameters = extra_float_digits
		log_connections = 0
		log_disconnections = 0
		stats_period = 600
		logfile = $dir/pgbouncer.log
		pidfile = $dir/pgbouncer.pid
	EOF
	if [[ $EUID -eq 0 ]]; then
		chown -R "$user:" "$dir"
	fi
	(cd "$dir" && as_pg_user pgbouncer -q "$dir/pgbouncer.ini") >"$dir/stderr.log" 2>&1 &
	BOUNCER_PID=$!
	if ! pgw_wait_listen "$port" "$BOUNCER_PID" 10; then
		cat "$dir/stderr.log" "$dir/pgbouncer.log" >&2 2>/dev/null || true
		die "pgbouncer did not start"
	fi
	T_CONN[$1]=$(conninfo "$port")
	T_PIDS[$1]=$BOUNCER_PID
	T_LOG[$1]=$dir/pgbouncer.log
	T_NOTE[$1]="$(pgbouncer --version | head -n 1), pool_mode=session, client auth trust; single-threaded (one process)"
}

target_pgwardd() { # NAME [MERGE_JSON] (@DIR@ in it: a directory of the target's own)
	local name=$1 merge=${2:-} port conf
	port=$(pgw_free_port)
	conf=$WORK/$name.json
	mkdir -p "$WORK/$name.d"
	merge=${merge//@DIR@/$WORK/$name.d}
	pgw_write_config "$conf" "$port" postgres "$PGTMP_DIR/postgres.pw" \
		'{"name": "bench", "match": {"user": "postgres"}, "auth": "trust", "upstream": "pg", "rules": [{"action": "allow"}], "guardrails": {"all": false}}' \
		'{"workers": 2, "log_level": "warn"}' ${merge:+"$merge"} ||
		die "cannot write the pgwardd configuration for $name"
	pgw_start "$conf" "$WORK/$name.log" "$port" || die "pgwardd ($name) did not start"
	T_CONN[$name]=$(conninfo "$port")
	T_PIDS[$name]=$PGW_PID
	T_LOG[$name]=$WORK/$name.log
	T_NOTE[$name]="$("$BUILD/pgwardd" --version), $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["workers"])' "$conf") worker thread(s), client auth trust, upstream SCRAM${merge:+; merged: $merge}"
}

# pgwardd on the steered path: pgbench runs inside a throwaway cgroup with the database's own
# address in its connection string, and the eBPF redirect brings it to pgwardd. ARG: the
# fast path (sockmap) on or off. Root only.
target_steered() { # NAME on|off
	local name=$1 fp=false port sport conf root cg
	[[ ${2:-off} == on ]] && fp=true
	root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
	[[ -n $root ]] || die "no cgroup2 mount for the steered targets"
	cg=$root/pgward-bench-$$-$name
	mkdir -p "$cg"
	BENCH_CGROUPS+=("$cg")
	printf '#!/bin/sh\necho $$ > "%s/cgroup.procs" && exec "$@"\n' "$cg" >"$WORK/in-$name"
	chmod +x "$WORK/in-$name"
	port=$(pgw_free_port)
	sport=$(pgw_free_port)
	conf=$WORK/$name.json
	pgw_write_config "$conf" "$port" postgres "$PGTMP_DIR/postgres.pw" \
		'{"name": "bench", "match": {"cgroup": "/'"${cg#"$root"/}"'"}, "auth": "trust", "rules": [{"action": "allow"}], "guardrails": {"all": false}}' \
		'{"workers": 2, "log_level": "warn", "upstreams": {"pg": {"reuse_connections": true}}}' \
		'{"redirect": {"cgroups": ["'"$cg"'"], "ports": ['"$PGTMP_PORT"'], "fastpath": '"$fp"', "pin_path": "/sys/fs/bpf/pgward-bench-'"$$-$name"'", "listen4_port": '"$sport"', "listen6": ""}}' ||
		die "cannot write the pgwardd configuration for $name"
	pgw_start "$conf" "$WORK/$name.log" "$port" || die "pgwardd ($name) did not start"
	T_CONN[$name]=$(conninfo "$PGTMP_PORT")
	T_PREFIX[$name]=$WORK/in-$name
	T_PIDS[$name]=$PGW_PID
	T_LOG[$name]=$WORK/$name.log
	T_NOTE[$name]="pgwardd on the steered path (eBPF redirect from a cgroup, the database's address in the connection string), fast path $2, reuse_connections"
}

# A realistic policy for the enforcement cost: 20 identities and 50 rules, guardrails on;
# the benchmark's identity is the last one (every other identity is tried first) and its
# reads are allowed by its 7th rule, after deny and approve rules that do not match; a mask rule
# on a table the workloads never read puts every result through masking (its plans and the
# relay's whole-message path), with nothing to mask.
policy_merge() {
	python3 - <<-'PY'
		import json
		ids = []
		for n in range(1, 20):
		    ids.append({"name": "agent-%d" % n, "match": {"user": "agent-%d" % n},
		                "auth": "trust", "upstream": "pg",
		                "rules": [{"action": "deny", "relations": ["secret.*", "hr.*"]},
		                          {"action": "allow", "class": ["select"],
		                           "relations": ["public.report_%d_*" % n]}]})
		ids.append({"name": "bench", "match": {"user": "postgres"}, "auth": "trust",
		            "upstream": "pg", "rules": [
		    {"name": "no-secrets", "action": "deny", "relations": ["secret.*", "hr.*"]},
		    {"name": "no-ddl", "action": "deny", "class": ["ddl", "dcl", "truncate"]},
		    {"name": "no-sleep", "action": "deny", "functions": ["pg_sleep*", "pg_advisory*"]},
		    {"name": "history-append-only", "action": "deny", "class": ["update", "delete"],
		     "relations": ["public.pgbench_history"]},
		    {"name": "big-deletes", "action": "approve", "class": ["delete"],
		     "relations": ["public.pgbench_accounts"]},
		    {"name": "pii", "action": "mask", "columns": ["public.customers.*"],
		     "strategy": "redact"},
		    {"name": "read", "action": "allow", "class": ["select", "explain"],
		     "relations": ["public.pgbench_*", "pg_catalog.*"], "access": "read"},
		    {"name": "write", "action": "allow", "class": ["insert", "update"],
		     "relations": ["public.pgbench_*"]},
		    {"name": "session", "action": "allow", "class": ["set", "transaction"]},
		    {"name": "maintenance", "action": "allow", "class": ["other"],
		     "relations": ["public.pgbench_*"]},
		    {"name": "copy-out", "action": "allow", "class": ["copy_to"],
		     "relations": ["public.pgbench_*"], "access": "read"},
		    {"name": "catalog", "action": "allow", "class": ["select"],
		     "relations": ["information_schema.*"]}]})
		print(json.dumps({"identities": ids, "client_encodings": ["UTF8", "SQL_ASCII"]}))
	PY
}

# The audit trail (default group commit) and every session recorded.
record_merge() {
	python3 -c 'import json; print(json.dumps({
	    "audit": {"file": "@DIR@/audit.jsonl"}, "recording": {"dir": "@DIR@"},
	    "identities": [{"name": "bench", "match": {"user": "postgres"}, "auth": "trust",
	                    "upstream": "pg", "rules": [{"action": "allow"}],
	                    "guardrails": {"all": False}, "record": True}]}))'
}

# Prints "NAME KIND DEFAULT [ARG]" for every target this run knows about, in run order;
# DEFAULT 1: run unless BENCH_TARGETS says otherwise.
candidate_targets() {
	local root=0
	[[ $EUID -eq 0 ]] && root=1
	printf '%s\n' "direct direct 1" "direct-scram direct_scram 0" "pgbouncer pgbouncer 1" \
		"pgwardd pgwardd 1" "pgwardd-policy pgwardd 1 $(policy_merge)" \
		'pgwardd-reuse pgwardd 1 {"upstreams": {"pg": {"reuse_connections": true}}}' \
		"pgwardd-audit pgwardd 1 {\"audit\": {\"file\": \"@DIR@/audit.jsonl\"}}" \
		"pgwardd-record pgwardd 1 $(record_merge)" \
		"steered steered $root off" "steered-fastpath steered $root on"
	local line name spec
	while IFS= read -r line; do
		[[ $line =~ ^[[:space:]]*$ ]] && continue
		name=${line%%[[:space:]]*}
		spec=${line#"$name"}
		[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || die "BENCH_EXTRA_PGWARDD: bad name '$name'"
		printf '%s\n' "pgwardd-$name pgwardd 1 $spec"
	done <<<"${BENCH_EXTRA_PGWARDD:-}"
}

# Sets SELECTED to the "NAME KIND DEFAULT [ARG]" lines to run; exits 2 on an unknown name.
SELECTED=()
select_targets() {
	local wanted=() line name found w cands
	if [[ -n ${BENCH_TARGETS:-} ]]; then
		read -ra wanted <<<"${BENCH_TARGETS//,/ }"
	fi
	cands=$(candidate_targets)
	for w in "${wanted[@]}"; do
		awk -v w="$w" '$1 == w { found = 1 } END { exit !found }' <<<"$cands" || {
			log "unknown target '$w' (known: $(cut -d' ' -f1 <<<"$cands" | paste -sd' '))"
			exit 2
		}
	done
	while IFS= read -r line; do
		read -r name _ <<<"$line"
		if ((${#wanted[@]} == 0)); then
			[[ $(cut -d' ' -f3 <<<"$line") == 1 ]] || continue
		else
			found=0
			for w in "${wanted[@]}"; do
				[[ $w == "$name" ]] && found=1
			done
			((found)) || continue
		fi
		SELECTED+=("$line")
	done <<<"$cands"
	((${#SELECTED[@]})) || {
		log "no targets selected"
		exit 2
	}
}

start_targets() {
	local line name kind arg
	for line in "${SELECTED[@]}"; do
		read -r name kind _ arg <<<"$line"
		log "starting target $name"
		"target_$kind" "$name" "$arg"
		TARGETS+=("$name")
	done
}

# --- measuring -------------------------------------------------------------------------

# Sum of utime+stime (clock ticks) of the given pids; fields 14 and 15 of /proc/PID/stat,
# counted after the ")" that ends the command name.
cpu_ticks() {
	local pid sum=0 rest f
	for pid in "$@"; do
		rest=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
		rest=${rest##*) }
		read -ra f <<<"$rest"
		# after "comm)" the fields start at field 3 (state): utime is f[11], stime f[12]
		sum=$((sum + f[11] + f[12]))
	done
	printf '%s\n' "$sum"
}

median() { # values...
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A R_TPS=() R_LAT=() R_CPU=() R_FAIL=()
FAILED=0

proxy_gone() { # target
	log "FAILED: a process of target $1 (pid ${T_PIDS[$1]}) is gone; the end of its log:"
	tail -n 20 "${T_LOG[$1]:-/dev/null}" 2>/dev/null | sed 's/^/bench:   /' >&2 || true
}

# run_one WORKLOAD_INDEX TARGET ROUND
run_one() {
	local wi=$1 t=$2 round=$3 key="$1|$2" out="" rc=0 args pids=() before after txns tps lat cpu clients
	read -ra args <<<"${W_ARGS[$wi]}"
	read -ra pids <<<"${T_PIDS[$t]}"
	before=0 after=0
	if ((${#pids[@]})) && ! before=$(cpu_ticks "${pids[@]}"); then
		proxy_gone "$t"
		rc=-1
	fi
	if ((rc == 0)); then
		local prefix=()
		[[ -n ${T_PREFIX[$t]:-} ]] && prefix=("${T_PREFIX[$t]}")
		out=$(timeout $((SECS * 3 + 60)) "${prefix[@]}" pgbench -n -T "$SECS" "${args[@]}" "${T_CONN[$t]}" 2>&1) || rc=$?
		if ((${#pids[@]})) && ! after=$(cpu_ticks "${pids[@]}"); then
			proxy_gone "$t"
			rc=-1
		fi
	fi
	txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	# pgbench's "latency average" is clients / tps, printed to the µs; recomputed here
	# from the tps line at full precision
	clients=$(sed -n 's/^number of clients: \([0-9]*\)$/\1/p' <<<"$out")
	lat=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' <<<"$out")
	if [[ " ${args[*]} " == *" -C "* ]]; then
		# with -C the connection set-up is the point: the rate including it
		tps=$(sed -n 's/^tps = \([0-9.]*\) (including .*/\1/p' <<<"$out")
	else
		tps=$(sed -n 's/^tps = \([0-9.]*\) (\(without initial\|excluding\) .*/\1/p' <<<"$out")
	fi
	if ((rc != 0)) || [[ -z $txns || -z $tps || -z $lat || -z $clients || $txns == 0 ]] ||
		! grep -q '^number of failed transactions: 0 ' <<<"$out"; then
		log "FAILED: ${W_LABEL[$wi]} via $t (exit $rc):"
		tail -n 8 <<<"$out" | sed 's/^/bench:   /' >&2
		R_FAIL[$key]=1
		FAILED=1
		return 0
	fi
	lat=$(awk -v c="$clients" -v t="$tps" 'BEGIN { printf "%.6f", 1000 * c / t }')
	R_TPS[$key]+=" $tps"
	R_LAT[$key]+=" $lat"
	if ((${#pids[@]})); then
		cpu=$(awk -v d=$((after - before)) -v hz="$CLK_TCK" -v n="$txns" 'BEGIN { printf "%.3f", d * 1e6 / hz / n }')
		R_CPU[$key]+=" $cpu"
	fi
	log "$(printf 'round %d/%d  %-24s %-16s %10.0f tps  %7.3f ms%s' "$round" "$ROUNDS" \
		"${W_LABEL[$wi]}" "$t" "$tps" "$lat" "${cpu:+  $cpu µs CPU/txn}")"
}

# --- masking -----------------------------------------------------------------------------

# One table of BENCH_MASK_ROWS rows (default a million) with two masked text columns, read whole
# by SELECT * (pgbench: one transaction, libpq takes every row) and by COPY TO STDOUT (psql),
# interleaved round by round against PostgreSQL directly, pgwardd for an identity without masks
# and pgwardd for one with them; rows per second and the ratio to direct, and pgwardd's peak
# memory (VmHWM) before and after.
MASK_ROWS=${BENCH_MASK_ROWS:-1000000}
declare -A M_RATE=()

mask_run() { # kind target conninfo
	local t0 t1 out
	t0=$(date +%s%N)
	if [[ $1 == select ]]; then
		printf 'SELECT * FROM bench_mask\n' >"$WORK/mask_select.sql"
		out=$(pgbench -n -t 1 -f "$WORK/mask_select.sql" "$3" 2>&1) || {
			log "masking: $1 $2 failed: $out"
			FAILED=1
			return
		}
	else
		psql -X -q -c 'COPY bench_mask TO STDOUT' "$3" >"$WORK/mask_copy.out" 2>"$WORK/mask_copy.err" || {
			log "masking: $1 $2 failed: $(head -c 300 "$WORK/mask_copy.err")"
			FAILED=1
			return
		}
		[[ $2 != pgwardd-masked ]] || ! grep -q 'ssn-000000042' "$WORK/mask_copy.out" || {
			log "masking: COPY through pgwardd-masked carried an unmasked value"
			FAILED=1
		}
	fi
	t1=$(date +%s%N)
	M_RATE["$1|$2"]+=" $(awk -v n="$MASK_ROWS" -v ns=$((t1 - t0)) 'BEGIN { printf "%.0f", n / (ns / 1e9) }')"
}

mask_bench() {
	local port pid hwm0 hwm1 round kind t conn direct rate ratio
	log "masking: $MASK_ROWS rows"
	pgtmp_psql -q -v ON_ERROR_STOP=1 >/dev/null <<-SQL || die "the masking table failed"
		CREATE TABLE bench_mask AS SELECT i AS id, 'ssn-' || lpad(i::text, 9, '0') AS ssn,
		    md5(i::text) || '@example.com' AS email, 'note number ' || i AS note
		    FROM generate_series(1, $MASK_ROWS) i;
		VACUUM ANALYZE bench_mask;
		GRANT SELECT ON bench_mask TO bench;
	SQL
	(umask 077 && head -c 32 /dev/urandom >"$WORK/mask.key")
	port=$(pgw_free_port)
	pgw_write_config "$WORK/mask.json" "$port" postgres "$PGTMP_DIR/postgres.pw" '{}' \
		'{"workers": 2, "log_level": "warn", "mask_key_file": "'"$WORK/mask.key"'", "identities": [
		  {"name": "masked", "match": {"user": "postgres", "application_name": "masked"},
		   "auth": "trust", "upstream": "pg", "rules": [
		    {"action": "mask", "columns": "public.bench_mask.ssn", "strategy": "partial"},
		    {"action": "mask", "columns": "public.bench_mask.email", "strategy": "hash"},
		    {"action": "allow", "class": ["select", "copy_to"], "relations": "public.*"}]},
		  {"name": "plain", "match": {"user": "postgres"}, "auth": "trust", "upstream": "pg",
		   "rules": [{"action": "allow"}], "guardrails": {"all": false}}]}' ||
		die "cannot write the masking configuration"
	pgw_start "$WORK/mask.json" "$WORK/mask.log" "$port" || die "pgwardd (masking) did not start"
	pid=$PGW_PID
	hwm0=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
	local -A conns=([direct]="$(conninfo "$PGTMP_PORT" bench)"
		[pgwardd-plain]="$(conninfo "$port")"
		[pgwardd-masked]="$(conninfo "$port") application_name=masked")
	for ((round = 1; round <= ROUNDS; round++)); do
		for kind in select copy; do
			for t in direct pgwardd-plain pgwardd-masked; do
				mask_run "$kind" "$t" "${conns[$t]}"
			done
		done
	done
	hwm1=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
	echo
	echo "# masking: $MASK_ROWS rows (id, ssn masked partial, email masked hash, note), median of $ROUNDS rounds"
	printf '%-8s %-16s %14s %8s\n' "read" "target" "rows/s" "vs dir"
	for kind in select copy; do
		# shellcheck disable=SC2086 # word splitting of the value lists on purpose
		direct=$(median ${M_RATE["$kind|direct"]:-0})
		for t in direct pgwardd-plain pgwardd-masked; do
			# shellcheck disable=SC2086
			rate=$(median ${M_RATE["$kind|$t"]:-0})
			ratio=$(awk -v a="$rate" -v b="$direct" 'BEGIN { printf "%.3f", b ? a / b : 0 }')
			printf '%-8s %-16s %14.0f %8s\n' "$kind" "$t" "$rate" "$ratio"
		done
	done
	echo "# select: pgbench -n -t 1 (SELECT * FROM bench_mask); copy: psql -c 'COPY bench_mask TO STDOUT'"
	echo "# pgwardd peak memory (VmHWM): $((hwm0 / 1024)) MiB started, $((hwm1 / 1024)) MiB after streaming every run"
}

# --- report ----------------------------------------------------------------------------

machine_info() {
	echo "# pgward benchmark, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "# machine:   $(nproc) CPU(s), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)," \
		"$(awk '/MemTotal/ { printf "%.1f GiB RAM", $2 / 1048576 }' /proc/meminfo)"
	echo "# kernel:    $(uname -srm)"
	echo "# server:    $(pgtmp_psql -Atc 'SELECT version()')"
	echo "# settings:  $(pgtmp_psql -Atc "SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name)
		FROM pg_settings WHERE name IN ('shared_buffers', 'max_connections', 'fsync', 'synchronous_commit')")"
	echo "# client:    $(pgbench --version)"
	echo "# rounds:    $ROUNDS x $SECS s per run, median reported; pgbench scale $SCALE; all targets on this machine"
	echo "#"
	echo "# targets:"
	local t wi
	for t in "${TARGETS[@]}"; do
		printf '#   %-16s %s\n' "$t" "${T_NOTE[$t]}"
		printf '#   %-16s conninfo: %s\n' "" "${T_CONN[$t]}"
	done
	echo "#"
	echo "# commands (CONNINFO = the target's conninfo above):"
	echo "#   pgbench -i -s $SCALE -q '$(conninfo "$PGTMP_PORT")'"
	for wi in "${!W_ARGS[@]}"; do
		printf '#   %-24s pgbench -n -T %s %s CONNINFO\n' "${W_LABEL[$wi]}:" "$SECS" "${W_ARGS[$wi]}"
	done
	echo
}

# Prints the table and writes the JSON rows.
report() {
	local json=$BUILD/bench.json wi t key tps lat cpu cpu_s ratio added d_tps d_lat first=1
	local fmt='%-24s %-16s %10s %9s %8s %10s %10s\n'
	# shellcheck disable=SC2059 # the format is ours
	printf "$fmt" "workload" "target" "TPS" "lat (ms)" "vs dir" "+lat (µs)" "CPU µs/tx"
	printf '%s\n' "$(printf '%.0s-' {1..93})"
	mkdir -p "$BUILD"
	{
		echo "["
		for wi in "${!W_ARGS[@]}"; do
			d_tps="" d_lat=""
			if [[ -n ${R_TPS["$wi|direct"]:-} ]]; then
				# shellcheck disable=SC2086 # word splitting of the value lists on purpose
				d_tps=$(median ${R_TPS["$wi|direct"]})
				# shellcheck disable=SC2086
				d_lat=$(median ${R_LAT["$wi|direct"]})
			fi
			for t in "${TARGETS[@]}"; do
				key="$wi|$t"
				if [[ -n ${R_FAIL[$key]:-} || -z ${R_TPS[$key]:-} ]]; then
					# shellcheck disable=SC2059
					printf "$fmt" "${W_LABEL[$wi]}" "$t" "FAILED" "-" "-" "-" "-" >&3
					((first)) || echo ","
					first=0
					printf '  {"workload": "%s", "pgbench_args": "%s", "target": "%s", "failed": true}' \
						"${W_LABEL[$wi]}" "${W_ARGS[$wi]}" "$t"
					continue
				fi
				# shellcheck disable=SC2086
				tps=$(median ${R_TPS[$key]})
				# shellcheck disable=SC2086
				lat=$(median ${R_LAT[$key]})
				cpu="" cpu_s="-" ratio="" added=""
				if [[ -n ${R_CPU[$key]:-} ]]; then
					# shellcheck disable=SC2086
					cpu=$(median ${R_CPU[$key]})
					cpu_s=$(printf '%.1f' "$cpu")
				fi
				if [[ -n $d_tps && $t != direct ]]; then
					ratio=$(awk -v a="$tps" -v b="$d_tps" 'BEGIN { printf "%.3f", a / b }')
					added=$(awk -v a="$lat" -v b="$d_lat" 'BEGIN { printf "%.1f", (a - b) * 1000 }')
				fi
				# shellcheck disable=SC2059
				printf "$fmt" "${W_LABEL[$wi]}" "$t" "$(printf '%.0f' "$tps")" "$(printf '%.3f' "$lat")" \
					"${ratio:--}" "${added:--}" "$cpu_s" >&3
				((first)) || echo ","
				first=0
				printf '  {"workload": "%s", "pgbench_args": "%s", "target": "%s", "tps": %.3f, "latency_ms": %.4f, "tps_ratio_to_direct": %s, "latency_added_us": %s, "proxy_cpu_us_per_txn": %s, "rounds": %d, "seconds": %d, "tps_runs": [%s]}' \
					"${W_LABEL[$wi]}" "${W_ARGS[$wi]}" "$t" "$tps" "$lat" "${ratio:-null}" "${added:-null}" \
					"${cpu:-null}" "$ROUNDS" "$SECS" "$(sed 's/^ //; s/ /, /g' <<<"${R_TPS[$key]}")"
			done
		done
		echo
		echo "]"
	} 3>&1 >"$json.tmp"
	mv "$json.tmp" "$json"
	echo
	echo "# TPS: median of the rounds; for -C rows the rate including connection set-up."
	echo "# lat: clients / TPS (pgbench's \"latency average\"), per transaction, median."
	echo "# vs dir: TPS / direct TPS.  +lat: latency minus direct's, in µs per transaction."
	echo "# CPU µs/tx: utime+stime of the proxy process (all its threads) over the run, from"
	echo "#   /proc/PID/stat ($CLK_TCK ticks/s), divided by the transactions of the run."
	echo "# pgbouncer is single-threaded (one process, at most one core); pgwardd runs worker threads."
	echo "# Client auth is trust for every target (direct: role bench via pg_hba); the proxies log"
	echo "#   in upstream as postgres with SCRAM."
	echo "# -C: direct and pgwardd start a new PostgreSQL backend per client connection (pgwardd"
	echo "#   also logs in upstream with SCRAM); pgbouncer's session pool reuses server connections."
	echo "#   pgwardd-reuse and the steered rows park and reuse them too (reuse_connections)."
	echo "# pgwardd-policy: 20 identities, 50 rules, guardrails on (scripts/bench.sh policy_merge);"
	echo "#   the others allow everything with the guardrails off."
	echo "# steered: pgbench in a cgroup dials the database itself; the eBPF redirect brings it"
	echo "#   to pgwardd (fastpath: sockmap between pgbench and pgwardd)."
	echo "# pgbench, the proxies and PostgreSQL share the machine's $(nproc) CPU(s)."
	echo "# JSON: $json"
}

# The statement analysis of each pgwardd target: stop it and read its workers' summaries.
# The audit trail and recording against pgwardd without them, per workload: the ratio of
# transactions per second and pgwardd's CPU per transaction.
evidence_report() {
	local wi t base tps cpu bcpu
	[[ -n ${R_TPS["0|pgwardd"]:-} ]] || return 0
	echo
	echo "# evidence: pgwardd with the audit trail (group commit) and with recording, against pgwardd without"
	printf '%-26s %-16s %8s %14s %14s\n' workload target "tps/off" "CPU µs/txn" "off µs/txn"
	for wi in "${!W_ARGS[@]}"; do
		[[ -n ${R_TPS["$wi|pgwardd"]:-} ]] || continue
		base=$(median ${R_TPS["$wi|pgwardd"]})
		bcpu=$(median ${R_CPU["$wi|pgwardd"]:-0})
		for t in pgwardd-audit pgwardd-record; do
			[[ -n ${R_TPS["$wi|$t"]:-} ]] || continue
			tps=$(median ${R_TPS["$wi|$t"]})
			cpu=$(median ${R_CPU["$wi|$t"]:-0})
			printf '%-26s %-16s %8s %14s %14s\n' "${W_LABEL[$wi]}" "$t" \
				"$(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.3f", b ? a / b : 0 }')" "$(printf %.1f "$cpu")" "$(printf %.1f "$bcpu")"
		done
	done
}

analysis_report() {
	local t pid log
	echo
	echo "# statement analysis (per pgwardd target, all workers, over every run):"
	for t in "${TARGETS[@]}"; do
		[[ ${T_NOTE[$t]} == pgwardd* ]] || continue
		pid=${T_PIDS[$t]%% *}
		log=${T_LOG[$t]}
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 100); do
			grep -q 'pgwardd stopped' "$log" 2>/dev/null && break
			sleep 0.1
		done
		awk -v t="$t" '/worker [0-9]+: stopped/ {
			for (i = 1; i <= NF; i++) {
				if ($(i + 1) == "queries,") q += $i
				if ($(i + 1) == "parses,") p += $i
				if ($(i + 1) == "denied,") d += $i
				if ($(i + 1) == "hits,") h += $i
				if ($(i + 1) == "misses)") m += $i
			}
		} END {
			printf "#   %-16s %d queries + %d parses judged, %d denied; cache %d hits, %d misses, hit rate %.4f%%\n",
				t, q, p, d, h, m, (h + m) ? 100 * h / (h + m) : 0
		}' "$log"
	done
}

main() {
	[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || {
		log "BENCH_ROUNDS must be a positive integer"
		exit 2
	}
	[[ $SECS =~ ^[1-9][0-9]*$ ]] || {
		log "BENCH_SECONDS must be a positive integer"
		exit 2
	}
	command -v pgbench >/dev/null || die "pgbench not found (scripts/deps.sh)"
	[[ -x $BUILD/pgwardd ]] || die "$BUILD/pgwardd not found (run make)"

	select_targets
	trap cleanup EXIT
	trap 'cleanup; exit 130' INT
	trap 'cleanup; exit 143' TERM
	PGTMP_CONF=$'shared_buffers = 256MB\nmax_connections = 300\nautovacuum = off' \
		PGTMP_QUIET=1 pgtmp_start bench || die "the throwaway cluster did not start"
	WORK=$PGTMP_DIR/bench
	mkdir -p "$WORK"

	# the direct target logs in with the superuser password, from a pgpass file
	unset PGPASSWORD PGSERVICE PGSSLMODE PGHOST PGPORT PGUSER PGDATABASE PGOPTIONS
	(umask 077 && printf '127.0.0.1:%s:*:postgres:%s\n' "$PGTMP_PORT" "$(cat "$PGTMP_DIR/postgres.pw")" >"$WORK/pgpass")
	export PGPASSFILE=$WORK/pgpass

	log "pgbench -i -s $SCALE"
	pgbench -i -s "$SCALE" -q "$(conninfo "$PGTMP_PORT")" >"$WORK/init.log" 2>&1 || {
		cat "$WORK/init.log" >&2
		die "pgbench -i failed"
	}
	pgtmp_psql -q -v ON_ERROR_STOP=1 >/dev/null <<-'SQL' || die "setting up role bench failed"
		VACUUM ANALYZE;
		CREATE ROLE bench LOGIN;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO bench;
	SQL
	{ echo 'host all bench 127.0.0.1/32 trust' && cat "$PGTMP_DATA/pg_hba.conf"; } >"$WORK/pg_hba.conf"
	cat "$WORK/pg_hba.conf" >"$PGTMP_DATA/pg_hba.conf"
	pgtmp_psql -qAtc 'SELECT pg_reload_conf()' >/dev/null
	local i
	for ((i = 0; i < 50; i++)); do
		pgbench -n -S -t 1 "$(conninfo "$PGTMP_PORT" bench)" >/dev/null 2>&1 && break
		sleep 0.1
	done
	((i < 50)) || die "the trust login for role bench does not work"

	start_targets
	machine_info

	local round wi t
	for ((round = 1; round <= ROUNDS; round++)); do
		for wi in "${!W_ARGS[@]}"; do
			for t in "${TARGETS[@]}"; do
				run_one "$wi" "$t" "$round"
				sleep 0.5 # let exiting backends go before the next run
			done
		done
	done
	report
	evidence_report
	analysis_report
	[[ ${BENCH_MASK:-1} == 0 ]] || mask_bench
	return "$FAILED"
}

main "$@"
