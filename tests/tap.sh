# shellcheck shell=bash
# The test runner's TAP bookkeeping, sourced by tests/run.sh (which runs the groups),
# tests/runner_selftest.sh (which feeds it synthetic groups) and tests/integration/lib.sh
# (whose run_tap checks a program's TAP with tap_parse and tap_problems).
#
# A group is a command printing TAP on stdout/stderr:
#   ok [N] [- name]                   a passed check
#   ok [N] [- name] # SKIP reason     a skipped check (counted as a skip, not a pass)
#   not ok [N] [- name]               a failed check
#   #   detail                        details (shown under the failures)
#   1..N                              the plan: at the start or at the end, exactly once
#   1..0 # SKIP reason                the whole group skipped (no checks at all)
# A group FAILS when it exits non-zero, prints no plan (or more than one, or one in the middle
# of its checks), runs a number of checks other than its plan, runs no checks without an
# explicit "1..0 # SKIP", says "Bail out!", or prints any "not ok". An exit status of 1 after
# at least one "not ok" is the usual way to say "checks failed" and adds nothing to those.
#
#   run_group NAME CMD...   runs CMD (a program, not a function; at most TAP_GROUP_SECONDS,
#                           default 3000) with stdout+stderr to $TAP_LOG_DIR/<NAME>.log, then
#                           tallies that file (tap_tally) into the totals
#   tap_summary             prints the skips, the failed groups and "N passed, N failed,
#                           N skipped"; returns 1 when anything failed

TAP_LOG_DIR=${TAP_LOG_DIR:-${TMPDIR:-/tmp}}
tap_reset() {
	TAP_TOTAL_PASS=0
	TAP_TOTAL_FAIL=0
	TAP_TOTAL_SKIP=0
	TAP_FAILED_GROUPS=()
	TAP_SKIPPED_GROUPS=()
	TAP_LAST_VERDICT=
	TAP_LAST_REASON=
	TAP_LAST_LOG=
}
tap_reset

# tap_parse FILE: sets TAP_PASS, TAP_FAIL, TAP_SKIP (ok/not ok/ok-with-# SKIP lines),
# TAP_PLAN (N of the plan, empty when there is none), TAP_PLANS (how many plan lines),
# TAP_PLAN_POS (start, end or middle), TAP_PLAN_SKIP (the reason of "1..0 # SKIP reason",
# empty otherwise), TAP_BAIL (1 after "Bail out!").
tap_parse() {
	local fields
	fields=$(awk '
		function trim(s) { sub(/^[ \t]+/, "", s); sub(/[ \t\r]+$/, "", s); return s }
		{ sub(/\r$/, "") }
		/^not ok([ \t]|$)/ { fail++; n++; if (!first) first = NR; last = NR; next }
		/^ok([ \t]|$)/ {
			if (tolower($0) ~ /[ \t]#[ \t]*skip/) skip++; else pass++
			n++; if (!first) first = NR; last = NR; next
		}
		/^1\.\.[0-9]+([ \t]*(#.*)?)?$/ {
			plans++; plan = $0; sub(/^1\.\./, "", plan); sub(/[^0-9].*/, "", plan)
			planline = NR; planskip = ""
			if (plan == 0 && tolower($0) ~ /#[ \t]*skip/) {
				planskip = $0; sub(/^[^#]*#[ \t]*[Ss][Kk][Ii][Pp][^ \t]*/, "", planskip)
				planskip = trim(planskip); if (planskip == "") planskip = "(no reason given)"
			}
			next
		}
		/^Bail out!/ { bail = 1 }
		END {
			pos = "-"
			if (plans) pos = (!first || planline < first) ? "start" : (planline > last ? "end" : "middle")
			printf "%d %d %d %s %d %s %d %s\n", pass, fail, skip, (plans ? plan : "-"), plans, pos, bail, planskip
		}' "$1")
	read -r TAP_PASS TAP_FAIL TAP_SKIP TAP_PLAN TAP_PLANS TAP_PLAN_POS TAP_BAIL TAP_PLAN_SKIP <<<"$fields"
	[[ $TAP_PLAN != - ]] || TAP_PLAN=
}

# tap_rc_text RC: "exited 2", "exited 139 (SIGSEGV)"
tap_rc_text() {
	local sig
	if (($1 > 128 && $1 < 128 + 65)) && sig=$(kill -l "$(($1 - 128))" 2>/dev/null); then
		echo "exited $1 (SIG$sig)"
	else
		echo "exited $1"
	fi
}

# tap_problems RC [noplan-ok]: after tap_parse, sets TAP_PROBLEMS to the reasons the stream
# fails beyond its "not ok" lines ("" when none) and TAP_WHOLE_SKIP to 1 for a valid
# "1..0 # SKIP" group. With noplan-ok, a missing plan is not a problem (run_tap's programs
# that print none yet, see tests/integration/lib.sh).
tap_problems() {
	local rc=$1 noplan_ok=${2:-} checks=$((TAP_PASS + TAP_FAIL + TAP_SKIP)) p=()
	TAP_WHOLE_SKIP=0
	if ((rc != 0)) && ! ((rc == 1 && TAP_FAIL > 0)); then
		p+=("$(tap_rc_text "$rc")")
	fi
	if [[ -z $TAP_PLAN ]]; then
		[[ -n $noplan_ok ]] || p+=("printed no plan")
	else
		((TAP_PLANS == 1)) || p+=("printed $TAP_PLANS plans")
		((TAP_PLAN == checks)) || p+=("planned $TAP_PLAN, ran $checks")
		[[ $TAP_PLAN_POS != middle ]] || p+=("plan 1..$TAP_PLAN in the middle of the checks")
	fi
	if ((checks == 0)); then
		if [[ $TAP_PLAN = 0 && -n $TAP_PLAN_SKIP && $TAP_PLANS -eq 1 ]]; then
			((rc != 0)) || TAP_WHOLE_SKIP=1
		else
			p+=("ran no checks (and no skip plan)")
		fi
	fi
	((TAP_BAIL == 0)) || p+=("Bail out!")
	local IFS=';'
	TAP_PROBLEMS=${p[*]}
	TAP_PROBLEMS=${TAP_PROBLEMS//;/; }
}

# tap_tally NAME LOG RC SECONDS: judges one finished group, prints its verdict line(s) and
# summary, adds it to the totals; TAP_LAST_VERDICT = passed, failed or skipped.
tap_tally() {
	local name=$1 log=$2 rc=$3 secs=$4 fail skip
	tap_parse "$log"
	tap_problems "$rc"
	fail=$TAP_FAIL
	skip=$TAP_SKIP
	if [[ -n $TAP_PROBLEMS ]]; then
		echo "not ok - $name: $TAP_PROBLEMS"
		fail=$((fail + 1))
	fi
	((TAP_WHOLE_SKIP == 0)) || skip=1
	TAP_TOTAL_PASS=$((TAP_TOTAL_PASS + TAP_PASS))
	TAP_TOTAL_FAIL=$((TAP_TOTAL_FAIL + fail))
	TAP_TOTAL_SKIP=$((TAP_TOTAL_SKIP + skip))
	# shellcheck disable=SC2034 # for the callers (the self-test), as TAP_LAST_LOG
	TAP_LAST_REASON=$TAP_PROBLEMS
	if ((fail > 0)); then
		TAP_LAST_VERDICT=failed
		TAP_FAILED_GROUPS+=("$name")
		echo "#   log: $log"
	elif ((TAP_WHOLE_SKIP || (skip > 0 && TAP_PASS == 0))); then
		TAP_LAST_VERDICT=skipped
	else
		TAP_LAST_VERDICT=passed
	fi
	if ((TAP_WHOLE_SKIP)); then
		TAP_SKIPPED_GROUPS+=("$name (whole group: $TAP_PLAN_SKIP)")
		echo "# skipped: $TAP_PLAN_SKIP"
	elif ((skip > 0)); then
		TAP_SKIPPED_GROUPS+=("$name ($skip)")
		grep -iE '^ok([[:space:]]|$).*[[:space:]]#[[:space:]]*skip' "$log" | sed 's/^/# skipped: /'
	fi
	printf '# %-34s %4d passed, %d failed, %d skipped (%s)\n' \
		"$name ($secs s)" "$TAP_PASS" "$fail" "$skip" "$TAP_LAST_VERDICT"
}

# tap_log_path NAME: a fresh log file name in $TAP_LOG_DIR for group NAME
tap_log_path() {
	local base=${1//[^A-Za-z0-9._-]/_} f i=1
	f=$TAP_LOG_DIR/$base.log
	while [[ -e $f ]]; do
		i=$((i + 1))
		f=$TAP_LOG_DIR/$base-$i.log
	done
	echo "$f"
}

# run_group NAME CMD...: run one group (stdout+stderr to its log file, standard input
# inherited), show its "not ok" and "#   " detail lines, judge it (tap_tally)
run_group() {
	local name=$1 log rc start
	shift
	log=$(tap_log_path "$name")
	# shellcheck disable=SC2034
	TAP_LAST_LOG=$log
	echo "# --- $name (log: $log)"
	start=$(date +%s)
	# a hung group fails in its own name instead of stalling the whole run: TERM at the limit
	# (its traps stop its clusters and daemons), KILL 30 s later
	timeout --kill-after=30 "${TAP_GROUP_SECONDS:-3000}" "$@" >"$log" 2>&1
	rc=$?
	((rc != 124)) || echo "not ok - $name: still running after ${TAP_GROUP_SECONDS:-3000} s (TAP_GROUP_SECONDS), stopped" >>"$log"
	grep -E '^(not ok|#   )' "$log"
	tap_tally "$name" "$log" "$rc" "$(($(date +%s) - start))"
}

# tap_fail NAME MESSAGE: a failure outside any group (e.g. a missing prerequisite)
tap_fail() {
	echo "not ok - $1: $2"
	TAP_TOTAL_FAIL=$((TAP_TOTAL_FAIL + 1))
	TAP_FAILED_GROUPS+=("$1")
}

tap_summary() {
	echo
	if ((${#TAP_SKIPPED_GROUPS[@]})); then
		echo "# skips: $(printf '%s, ' "${TAP_SKIPPED_GROUPS[@]}" | sed 's/, $//')"
	fi
	if ((${#TAP_FAILED_GROUPS[@]})); then
		echo "# failed groups: ${TAP_FAILED_GROUPS[*]}"
	fi
	echo "$TAP_TOTAL_PASS passed, $TAP_TOTAL_FAIL failed, $TAP_TOTAL_SKIP skipped"
	((TAP_TOTAL_FAIL == 0))
}
