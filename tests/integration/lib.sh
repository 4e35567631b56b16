# shellcheck shell=bash
# Shared helpers of the shell tests: TAP reporting and pgwardd life cycle.
#   check NAME CMD...        run CMD, print "ok - NAME" or "not ok - NAME" (CMD's stderr as details)
#   check_skip NAME REASON   print "ok - NAME # SKIP REASON" (a skip, not a pass)
#   run_tap CMD...           fold the checks of a program printing TAP itself into this group,
#                            verifying its plan and exit status
#   finish                   the last line of every script: prints the totals and the plan
#                            "1..N"; a script that ends without it has no plan, a failure
# shellcheck source-path=SCRIPTDIR source=../tap.sh
source "$(dirname "${BASH_SOURCE[0]}")/../tap.sh"
PW_PASS=0
PW_FAIL=0
PW_SKIP=0

# When this script's standard output is a regular file (as under tests/run.sh, which writes
# each group to its log), finish counts the check lines really printed into it from here on,
# those of programs printing TAP directly included (core.sh's suites.sh, the "not ok" lines
# echoed by hand), so that the plan is what ran. Elsewhere (a terminal, a pipe) the plan
# counts what check, check_skip and run_tap printed.
PW_TAP_OUT=
PW_TAP_FROM=0
pw_fd1=/proc/$BASHPID/fd/1 # (here, not inside $(...), where BASHPID and fd 1 are another's)
if [[ -f $pw_fd1 && -r $pw_fd1 ]]; then
	PW_TAP_OUT=$(stat -L -c %d:%i "$pw_fd1")
	PW_TAP_FROM=$(stat -L -c %s "$pw_fd1")
fi
unset pw_fd1

# check NAME CMD...: run CMD, report ok/not ok under NAME.
check() {
	local name=$1
	shift
	if "$@" >/dev/null 2>"${TMPDIR:-/tmp}/pw_check.err.$$"; then
		echo "ok - $name"
		PW_PASS=$((PW_PASS + 1))
	else
		echo "not ok - $name"
		sed 's/^/#   /' "${TMPDIR:-/tmp}/pw_check.err.$$" | head -20
		PW_FAIL=$((PW_FAIL + 1))
	fi
	rm -f "${TMPDIR:-/tmp}/pw_check.err.$$"
}

# check_skip NAME REASON: a check that cannot run here, said so (counted as a skip).
check_skip() {
	echo "ok - $1 # SKIP $2"
	PW_SKIP=$((PW_SKIP + 1))
}

# Programs run_tap accepts without a plan line (their exit status, and that they printed
# checks at all, are still verified), by file name: none today.
PW_TAP_NO_PLAN=()

# run_tap CMD...: a program printing TAP itself (ok/not ok lines, a plan "1..N"); its check
# and comment lines are folded into this group (their numbers dropped), then one "not ok"
# is added if it exited non-zero (other than 1 after a "not ok"), crashed, timed out
# (300 s), printed no plan or a plan other than its number of checks, or no checks at all.
# A program printing only "1..0 # SKIP reason" counts as one skip.
run_tap() {
	local out rc w noplan=
	out=$(mktemp "${TMPDIR:-/tmp}/pw_tap.XXXXXX")
	timeout 300 "$@" >"$out" 2>&1
	rc=$?
	for w in "$@"; do
		[[ " ${PW_TAP_NO_PLAN[*]} " != *" ${w##*/} "* ]] || noplan=1
	done
	grep -E '^((not )?ok([[:space:]]|$)|#)' "$out" | sed -E 's/^(not )?ok [0-9]+/\1ok/'
	tap_parse "$out"
	PW_PASS=$((PW_PASS + TAP_PASS))
	PW_FAIL=$((PW_FAIL + TAP_FAIL))
	PW_SKIP=$((PW_SKIP + TAP_SKIP))
	tap_problems "$rc" "$noplan"
	TAP_PROBLEMS=${TAP_PROBLEMS/#exited 124/timed out after 300 s}
	if ((TAP_WHOLE_SKIP)); then
		check_skip "$*" "$TAP_PLAN_SKIP"
	elif [[ -n $TAP_PROBLEMS ]]; then
		echo "not ok - $*: $TAP_PROBLEMS"
		tail -5 "$out" | sed 's/^/#   /'
		PW_FAIL=$((PW_FAIL + 1))
	fi
	rm -f "$out"
}

# finish: the totals and the plan (see PW_TAP_OUT above); fails when anything failed.
finish() {
	local fd1=/proc/$BASHPID/fd/1 n=$((PW_PASS + PW_FAIL + PW_SKIP)) nfail=$PW_FAIL seen
	echo "# $PW_PASS passed, $PW_FAIL failed, $PW_SKIP skipped (by check, check_skip and run_tap)"
	if [[ -n $PW_TAP_OUT && $(stat -L -c %d:%i "$fd1" 2>/dev/null) == "$PW_TAP_OUT" ]]; then
		tap_parse <(tail -c +$((PW_TAP_FROM + 1)) "$fd1")
		seen=$((TAP_PASS + TAP_FAIL + TAP_SKIP))
		if ((seen != n)); then
			echo "# the plan counts the $seen check lines printed ($TAP_PASS passed, $TAP_FAIL failed, $TAP_SKIP skipped), not only the $n of check, check_skip and run_tap"
		fi
		n=$seen
		nfail=$TAP_FAIL
	fi
	echo "1..$n"
	((PW_FAIL == 0 && nfail == 0))
}

pw_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pw_wait_log FILE PATTERN [SECONDS]
pw_wait_log() {
	local i
	for ((i = 0; i < ${3:-10} * 10; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# pw_start_pgwardd CONFIG LOG [ARGS...]: starts pgwardd in the background (PGWARDD_PID), waits until it
# is fully up ("started": listeners open and, with a redirect section, the BPF programs attached;
# "worker(s) running" comes before the attach), and arranges for it to be stopped when the shell
# exits.
pw_start_pgwardd() {
	local runner=()
	[[ -n ${PGWARD_VALGRIND:-} ]] && runner=(valgrind -q --error-exitcode=99)
	"${runner[@]}" "$BUILD/pgwardd" --config "$1" "${@:3}" >"$2" 2>&1 &
	PGWARDD_PID=$!
	PW_PIDS+=("$PGWARDD_PID")
	pw_wait_log "$2" 'pgwardd .* started (pid' 20 || return 1
}
PW_PIDS=()
pw_cleanup() {
	local p
	for p in "${PW_PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null && kill -TERM "$p" 2>/dev/null
	done
}

pw_hwm_kb() {
	awk '/VmHWM/ {print $2}' "/proc/$PGWARDD_PID/status" 2>/dev/null || echo 0
}
