#!/usr/bin/env bash
# Transparency oracle: PostgreSQL's own regression, isolation and
# libpq_pipeline suites, run once against the server directly and once through
# the proxy, must give identical results.
#
# Usage:
#   tests/integration/suites.sh --direct HOST:PORT --proxy HOST:PORT \
#       --user USER --password-file FILE [--only regress|isolation|pipeline]...
#       [--outdir DIR] [--keep] [--sslmode MODE] [--sslrootcert FILE]
#       [--timeout SECONDS]
#
#   --direct/--proxy  the server, and the proxy in front of it (IPv6: [::1]:5432)
#   --user            a superuser (the regression suite needs one)
#   --password-file   its password (first line)
#   --only SUITE      run only that suite (repeatable); default: all three
#   --outdir DIR      where runs go (default: a new ${TMPDIR:-/tmp}/pgward-suites.XXXXXX);
#                     the server's OS user must be able to write there (the
#                     regression suite has the server write files into results/)
#   --keep            keep the output directory even when every check passed
#   --sslmode MODE, --sslrootcert FILE
#                     libpq SSL settings for both runs (else PGSSLMODE etc.)
#   --timeout SECS    limit per suite run (default 1200)
#
# Each suite runs against the direct server, then through the proxy, in a
# database of the same name that is dropped and re-created (through the direct
# server) before each run.  Checks print as `ok - ...` / `not ok - ...`;
# differences are shown (first 200 lines) and the output directory is kept.
# Exit status: 0 when every check passed, 1 when some did not, 2 on usage or
# setup errors.
#
# Needs scripts/pgsrc.sh (called here; it does nothing when already done).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# Regression tests whose output differs between two identical runs against the
# same server, so that only their pass/fail status is compared.  Keep minimal;
# each entry says why.
REGRESS_STATUS_ONLY=(
)
# Same for the isolation suite.
ISOLATION_STATUS_ONLY=(
)

# libpq_pipeline tests whose output depends on timing, compared after
# normalization (see normalize_pipeline_output):
#   uniqviol: sends until the socket buffer fills, then reads, and so on; how
#   many queries fit in a socketful, so the counts, key values and number of
#   switches it prints, vary from run to run (even direct vs direct).
#   Upstream's TAP test checks only its exit status.
PIPELINE_NORMALIZE=(uniqviol)

PIPELINE_ROWS=700 # as upstream's t/001_libpq_pipeline.pl
DIFF_LINES=200

die() {
	printf 'suites.sh: error: %s\n' "$*" >&2
	exit 2
}
note() { printf '# %s\n' "$*"; }

usage() {
	sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

# HOST:PORT or [IPv6]:PORT -> "HOST PORT"
split_hostport() {
	local hp=$1 host port
	if [[ $hp =~ ^\[([^]]+)\]:([0-9]+)$ ]]; then
		host=${BASH_REMATCH[1]}
		port=${BASH_REMATCH[2]}
	elif [[ $hp =~ ^([^:]+):([0-9]+)$ ]]; then
		host=${BASH_REMATCH[1]}
		port=${BASH_REMATCH[2]}
	else
		die "expected HOST:PORT or [IPV6]:PORT, got '$hp'"
	fi
	printf '%s %s\n' "$host" "$port"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1fs", b - a }'; }

# ---------------------------------------------------------------------------
# Checks

FAILS=0
OKS=0
ok() {
	printf 'ok - %s\n' "$*"
	OKS=$((OKS + 1))
}
not_ok() {
	printf 'not ok - %s\n' "$*"
	FAILS=$((FAILS + 1))
}

show_diff() { # file
	local n
	n=$(wc -l <"$1")
	sed -n "1,${DIFF_LINES}p" "$1" | cut -c1-300 | sed 's/^/#   /'
	if ((n > DIFF_LINES)); then
		note "  ... ($((n - DIFF_LINES)) more lines in $1)"
	fi
}

# ---------------------------------------------------------------------------
# Database handling (always through the direct server)

psql_direct() {
	"$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$DIRECT_HOST" -p "$DIRECT_PORT" -U "$DBUSER" -d postgres "$@"
}

# Drop and re-create DB the way pg_regress creates its databases
# (template0, per-database settings), with --encoding=UTF8 --no-locale.
recreate_db() {
	local db=$1
	psql_direct >/dev/null <<-EOF || die "could not re-create database $db through the direct server"
		SET client_min_messages = warning;
		DROP DATABASE IF EXISTS "$db" WITH (FORCE);
		CREATE DATABASE "$db" TEMPLATE=template0 ENCODING='UTF8' LC_COLLATE='C' LC_CTYPE='C';
		ALTER DATABASE "$db" SET lc_messages TO 'C';
		ALTER DATABASE "$db" SET lc_monetary TO 'C';
		ALTER DATABASE "$db" SET lc_numeric TO 'C';
		ALTER DATABASE "$db" SET lc_time TO 'C';
		ALTER DATABASE "$db" SET bytea_output TO 'hex';
		ALTER DATABASE "$db" SET timezone_abbreviations TO 'Default';
	EOF
}

drop_db() {
	psql_direct -c "DROP DATABASE IF EXISTS \"$1\" WITH (FORCE)" >/dev/null 2>&1 || true
}

# Cluster-wide objects the suites create and (should) drop again.  Anything
# left over by a run is dropped so the next run starts from the same state.
snapshot_globals() {
	psql_direct -At -c "SELECT 'role ' || rolname FROM pg_roles UNION ALL SELECT 'tablespace ' || spcname FROM pg_tablespace UNION ALL SELECT 'database ' || datname FROM pg_database ORDER BY 1"
}

cleanup_globals() { # before-snapshot label
	local before=$1 label=$2 after extra kind name
	after=$(snapshot_globals) || return 0
	extra=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after"))
	[[ -n $extra ]] || return 0
	note "$label left cluster-wide objects behind, dropping them: $(tr '\n' ',' <<<"$extra")"
	while read -r kind name; do
		case $kind in
		database) psql_direct -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null 2>&1 || true ;;
		tablespace) psql_direct -c "DROP TABLESPACE IF EXISTS \"$name\"" >/dev/null 2>&1 || true ;;
		role) psql_direct -c "DROP OWNED BY \"$name\" CASCADE" >/dev/null 2>&1 || true
			psql_direct -c "DROP ROLE IF EXISTS \"$name\"" >/dev/null 2>&1 || true ;;
		esac
	done <<<"$extra"
}

# Directory the server (another OS user) can write into, for results/.
make_shared_dir() {
	mkdir -p "$1"
	chmod 1777 "$1"
}

# ---------------------------------------------------------------------------
# pg_regress-based suites (regress, isolation)

# Parses pg_regress stdout into "name status" lines (status: ok, FAILED,
# ignored-failure).
regress_statuses() {
	sed -nE 's/^(test |ok |not ok |     | )?[[:space:]]*([A-Za-z0-9_.+-]+)[[:space:]]+\.\.\.[[:space:]]+(ok|FAILED|failed \(ignored\)).*/\2 \3/p' "$1" |
		sed 's/failed (ignored)/ignored-failure/'
}

# run_regress_like SUITE TARGET HOST PORT
run_regress_like() {
	local suite=$1 target=$2 host=$3 port=$4 dir db prog rc=0 t0 t1
	dir=$OUTDIR/$suite/$target
	mkdir -p "$dir"
	chmod 755 "$dir"
	make_shared_dir "$dir/results"
	local args=(--use-existing --bindir="$PG_REGRESS_BINDIR" --host="$host" --port="$port" --user="$DBUSER"
		--outputdir="$dir" --encoding=UTF8 --no-locale)
	case $suite in
	regress)
		db=regression
		prog=$PG_REGRESS
		args+=(--inputdir="$PGSRC_DIR/src/test/regress" --schedule="$PGSRC_DIR/src/test/regress/parallel_schedule"
			--dlpath="$REGRESS_DLPATH" --max-concurrent-tests=20 --dbname="$db")
		;;
	isolation)
		db=isolation_regression
		prog=$PG_ISOLATION_REGRESS
		args+=(--inputdir="$PGSRC_DIR/src/test/isolation" --schedule="$PGSRC_DIR/src/test/isolation/isolation_schedule"
			--dbname="$db")
		;;
	esac
	recreate_db "$db"
	local before
	before=$(snapshot_globals)
	t0=$(now)
	(cd "$dir" && timeout --kill-after=30 "$TIMEOUT" "$prog" "${args[@]}") >"$dir/stdout" 2>"$dir/stderr" || rc=$?
	t1=$(now)
	cleanup_globals "$before" "$suite $target run"
	printf '%s\n' "$rc" >"$dir/exitcode"
	regress_statuses "$dir/stdout" >"$dir/statuses"
	local total failed
	total=$(wc -l <"$dir/statuses")
	failed=$(grep -cv ' ok$' "$dir/statuses" || true)
	printf '%s\n' "$(elapsed "$t0" "$t1")" >"$dir/time"
	note "$suite $target run: exit $rc, $total tests, $failed failed$(
		((failed > 0)) && printf ' (%s)' "$(grep -v ' ok$' "$dir/statuses" | cut -d' ' -f1 | tr '\n' ' ' | sed 's/ $//')"
	), $(cat "$dir/time")"
	if ((rc == 124 || rc == 137)); then
		note "$suite $target run timed out after ${TIMEOUT}s"
	fi
	if ((rc >= 2)); then
		note "$suite $target stderr (tail):"
		tail -n 20 "$dir/stderr" | sed 's/^/#   /'
	fi
}

compare_regress_like() {
	local suite=$1 d=$OUTDIR/$1/direct p=$OUTDIR/$1/proxy
	local -a status_only=()
	case $suite in
	regress) status_only=("${REGRESS_STATUS_ONLY[@]}") ;;
	isolation) status_only=("${ISOLATION_STATUS_ONLY[@]}") ;;
	esac
	local times
	times="direct $(cat "$d/time"), proxy $(cat "$p/time")"

	if [[ ! -s $d/statuses ]] || (($(cat "$d/exitcode") >= 2)); then
		not_ok "$suite: the direct run did not complete (exit $(cat "$d/exitcode")); see $d/stdout"
		return
	fi

	local bad=0 excl=() t
	for t in "${status_only[@]}"; do
		excl+=(-x "$t.out")
	done

	if [[ $(cat "$d/exitcode") != "$(cat "$p/exitcode")" ]]; then
		not_ok "$suite: exit status differs (direct $(cat "$d/exitcode"), proxy $(cat "$p/exitcode"))"
		bad=1
	fi
	if ! diff -u "$d/statuses" "$p/statuses" >"$OUTDIR/$suite.status.diff"; then
		not_ok "$suite: pass/fail status differs"
		show_diff "$OUTDIR/$suite.status.diff"
		bad=1
	fi
	if ! diff -r -u "${excl[@]}" "$d/results" "$p/results" >"$OUTDIR/$suite.results.diff" 2>&1; then
		not_ok "$suite: results/ differ ($times)"
		show_diff "$OUTDIR/$suite.results.diff"
		bad=1
	fi
	if ((bad == 0)); then
		ok "$suite: results identical, $(wc -l <"$d/statuses") tests${status_only[*]:+ (status only: ${status_only[*]})} ($times)"
	fi
}

# ---------------------------------------------------------------------------
# libpq_pipeline

pipeline_conninfo() { # host port
	local ci="host=$1 port=$2 user=$DBUSER dbname=pipeline_regression"
	[[ -n $SSLMODE ]] && ci+=" sslmode=$SSLMODE"
	[[ -n $SSLROOTCERT ]] && ci+=" sslrootcert=$SSLROOTCERT"
	printf '%s\n' "$ci"
}

run_pipeline() { # TARGET HOST PORT
	local target=$1 host=$2 port=$3 dir t rc t0 t1 extra
	dir=$OUTDIR/pipeline/$target
	mkdir -p "$dir"
	recreate_db pipeline_regression
	local before
	before=$(snapshot_globals)
	t0=$(now)
	for t in "${PIPELINE_TESTS[@]}"; do
		extra=(-r "$PIPELINE_ROWS")
		if [[ -f $PGSRC_DIR/src/test/modules/libpq_pipeline/traces/$t.trace ]]; then
			extra+=(-t "$dir/$t.trace")
		fi
		rc=0
		timeout --kill-after=10 120 "$LIBPQ_PIPELINE" "${extra[@]}" "$t" "$(pipeline_conninfo "$host" "$port")" \
			>"$dir/$t.out" 2>&1 || rc=$?
		printf '%s\n' "$rc" >"$dir/$t.exitcode"
	done
	t1=$(now)
	cleanup_globals "$before" "pipeline $target run"
	printf '%s\n' "$(elapsed "$t0" "$t1")" >"$dir/time"
	local failed=()
	for t in "${PIPELINE_TESTS[@]}"; do
		[[ $(cat "$dir/$t.exitcode") == 0 ]] || failed+=("$t")
	done
	note "pipeline $target run: ${#PIPELINE_TESTS[@]} tests, ${#failed[@]} failed${failed[*]:+ (${failed[*]})}, $(cat "$dir/time")"
}

# Numbers replaced by N, progress dots and the points where it switches
# between writing and reading dropped, repeated lines collapsed: what is left
# is the sequence results / the one expected error / aborted results / "ok".
normalize_pipeline_output() {
	tr -s '.' <"$1" | sed -E 's/[0-9]+/N/g; s/^(uniqviol )[.E]+/\1/' |
		grep -vE '^[.E]*$|^switch to reading$|^done writing$' | uniq
}

compare_pipeline() {
	local d=$OUTDIR/pipeline/direct p=$OUTDIR/pipeline/proxy t bad up what
	for t in "${PIPELINE_TESTS[@]}"; do
		bad=0
		what=output
		if [[ $(cat "$d/$t.exitcode") != "$(cat "$p/$t.exitcode")" ]]; then
			not_ok "pipeline $t: exit status differs (direct $(cat "$d/$t.exitcode"), proxy $(cat "$p/$t.exitcode"))"
			bad=1
		fi
		if [[ " ${PIPELINE_NORMALIZE[*]} " == *" $t "* ]]; then
			normalize_pipeline_output "$d/$t.out" >"$d/$t.out.normalized"
			normalize_pipeline_output "$p/$t.out" >"$p/$t.out.normalized"
			what="normalized output"
			if ! diff -u "$d/$t.out.normalized" "$p/$t.out.normalized" >"$OUTDIR/pipeline.$t.out.diff"; then
				not_ok "pipeline $t: normalized output differs"
				show_diff "$OUTDIR/pipeline.$t.out.diff"
				bad=1
			fi
		elif ! diff -u "$d/$t.out" "$p/$t.out" >"$OUTDIR/pipeline.$t.out.diff"; then
			not_ok "pipeline $t: output differs"
			show_diff "$OUTDIR/pipeline.$t.out.diff"
			bad=1
		fi
		up=$PGSRC_DIR/src/test/modules/libpq_pipeline/traces/$t.trace
		if [[ -f $up ]]; then
			what="$what and trace"
			if ! diff -u "$d/$t.trace" "$p/$t.trace" >"$OUTDIR/pipeline.$t.trace.diff" 2>&1; then
				not_ok "pipeline $t: protocol trace differs"
				show_diff "$OUTDIR/pipeline.$t.trace.diff"
				bad=1
			fi
			if ! diff -q "$up" "$d/$t.trace" >/dev/null 2>&1; then
				note "pipeline $t: the direct run's trace differs from upstream's expected trace ($up)"
			fi
		fi
		if ((bad == 0)); then
			ok "pipeline $t: exit $(cat "$d/$t.exitcode"), $what identical"
		fi
	done
}

# ---------------------------------------------------------------------------

main() {
	local direct="" proxy="" pwfile="" keep=0 only=()
	DBUSER=""
	OUTDIR=""
	SSLMODE=""
	SSLROOTCERT=""
	TIMEOUT=1200
	while (($#)); do
		case $1 in
		--direct) direct=${2:?--direct needs HOST:PORT} && shift ;;
		--proxy) proxy=${2:?--proxy needs HOST:PORT} && shift ;;
		--user) DBUSER=${2:?--user needs a name} && shift ;;
		--password-file) pwfile=${2:?--password-file needs a file} && shift ;;
		--only)
			case ${2:-} in
			regress | isolation | pipeline) only+=("$2") ;;
			*) die "--only takes regress, isolation or pipeline" ;;
			esac
			shift
			;;
		--outdir) OUTDIR=${2:?--outdir needs a directory} && shift ;;
		--keep) keep=1 ;;
		--sslmode) SSLMODE=${2:?} && shift ;;
		--sslrootcert) SSLROOTCERT=${2:?} && shift ;;
		--timeout) TIMEOUT=${2:?} && shift ;;
		-h | --help) usage 0 ;;
		*) die "unknown argument '$1' (see --help)" ;;
		esac
		shift
	done
	[[ -n $direct && -n $proxy && -n $DBUSER && -n $pwfile ]] ||
		die "--direct, --proxy, --user and --password-file are required (see --help)"
	[[ -r $pwfile ]] || die "cannot read password file $pwfile"
	((${#only[@]})) || only=(regress isolation pipeline)
	read -r DIRECT_HOST DIRECT_PORT <<<"$(split_hostport "$direct")"
	read -r PROXY_HOST PROXY_PORT <<<"$(split_hostport "$proxy")"

	PGPASSWORD=$(head -n 1 "$pwfile")
	export PGPASSWORD
	[[ -n $SSLMODE ]] && export PGSSLMODE=$SSLMODE
	[[ -n $SSLROOTCERT ]] && export PGSSLROOTCERT=$SSLROOTCERT
	# the suites' settings must not come from the caller's environment
	unset PGDATABASE PGOPTIONS PGSERVICE PGHOSTADDR PGCLIENTENCODING PGTZ PGDATESTYLE

	local envtext
	envtext=$("$ROOT/scripts/pgsrc.sh" --print-env) || die "scripts/pgsrc.sh failed"
	eval "$envtext"
	local v
	for v in PGSRC_DIR PG_BINDIR PG_REGRESS_BINDIR PG_REGRESS PG_ISOLATION_REGRESS LIBPQ_PIPELINE REGRESS_DLPATH; do
		[[ -n ${!v:-} ]] || die "scripts/pgsrc.sh did not provide $v"
	done
	note "sources: $PGSRC_DIR (Debian $PGSRC_VERSION; server package $PGSRC_INSTALLED_VERSION); psql for pg_regress: $PG_REGRESS_BINDIR/psql"

	psql_direct -c 'SELECT 1' >/dev/null 2>&1 ||
		die "cannot connect to the direct server $direct as $DBUSER: $(psql_direct -c 'SELECT 1' 2>&1 | head -n 3)"

	if [[ -z $OUTDIR ]]; then
		OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/pgward-suites.XXXXXX")
	else
		mkdir -p "$OUTDIR"
	fi
	chmod 755 "$OUTDIR"
	OUTDIR=$(cd "$OUTDIR" && pwd)
	note "output: $OUTDIR"

	local suite t0
	t0=$(now)
	for suite in "${only[@]}"; do
		case $suite in
		regress | isolation)
			rm -rf "${OUTDIR:?}/$suite"
			run_regress_like "$suite" direct "$DIRECT_HOST" "$DIRECT_PORT"
			run_regress_like "$suite" proxy "$PROXY_HOST" "$PROXY_PORT"
			drop_db "$([[ $suite == regress ]] && echo regression || echo isolation_regression)"
			compare_regress_like "$suite"
			;;
		pipeline)
			rm -rf "${OUTDIR:?}/pipeline"
			mapfile -t PIPELINE_TESTS < <("$LIBPQ_PIPELINE" tests)
			((${#PIPELINE_TESTS[@]})) || die "$LIBPQ_PIPELINE tests listed no tests"
			run_pipeline direct "$DIRECT_HOST" "$DIRECT_PORT"
			run_pipeline proxy "$PROXY_HOST" "$PROXY_PORT"
			drop_db pipeline_regression
			compare_pipeline
			;;
		esac
	done

	note "$OKS ok, $FAILS not ok, total $(elapsed "$t0" "$(now)")"
	if ((FAILS > 0)); then
		note "runs kept in $OUTDIR"
		exit 1
	fi
	if ((keep == 1)); then
		note "runs kept in $OUTDIR"
	else
		rm -rf "$OUTDIR"
	fi
}

main "$@"
