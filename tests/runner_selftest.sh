#!/usr/bin/env bash
# The test runner's own test (tests/run.sh runs it as its first group): synthetic groups go
# through the runner's run_group and tally (tests/tap.sh), each verdict (failed, skipped,
# passed) and its reason is checked, then the totals; then tests/integration/lib.sh's
# check/run_tap/finish and tests/bpf/lib.sh's not-root path. Prints TAP with a plan.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/tap.sh
source "$here/tap.sh"
LIB=$here/integration/lib.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgward-runner-selftest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
TAP_LOG_DIR=$tmp/logs
mkdir -p "$TAP_LOG_DIR"
n=0
nfail=0

say() { # COND-STATUS NAME [DETAIL-FILE]: one check of this test ("#" in NAME escaped, as TAP wants)
	local name=${2//#/\\#}
	n=$((n + 1))
	if (($1 == 0)); then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name"
		nfail=$((nfail + 1))
		[[ -z ${3:-} ]] || head -30 "$3" | sed 's/^/#   /'
	fi
}

# expect NAME VERDICT REASON CMD...: CMD run as a group by run_group must get VERDICT, and
# the runner's reason must contain REASON ("-": no reason at all, only the group's own "not ok"
# lines; "log:TEXT": no reason, and a "not ok" line of the group's log contains TEXT)
expect() {
	local name=$1 verdict=$2 reason=$3 good=1
	shift 3
	run_group "$name" "$@" >"$tmp/runner.out" 2>&1
	[[ $TAP_LAST_VERDICT == "$verdict" ]] || good=0
	if [[ $reason == - ]]; then
		[[ -z $TAP_LAST_REASON ]] || good=0
	elif [[ $reason == log:* ]]; then
		[[ -z $TAP_LAST_REASON ]] || good=0
		grep '^not ok' "$TAP_LAST_LOG" | grep -qF -- "${reason#log:}" || good=0
	else
		[[ $TAP_LAST_REASON == *"$reason"* ]] || good=0
	fi
	{
		echo "runner said:"
		cat "$tmp/runner.out"
		echo "group log ($TAP_LAST_LOG):"
		cat "$TAP_LAST_LOG"
	} >"$tmp/detail"
	say $((1 - good)) "$name: $verdict${reason:+ ($reason)}, got $TAP_LAST_VERDICT${TAP_LAST_REASON:+ ($TAP_LAST_REASON)}" "$tmp/detail"
}

# --- the runner's verdicts ---------------------------------------------------------------------
tap_reset
expect "2 oks, plan, exit 1" failed "exited 1" \
	bash -c 'echo "ok 1 - a"; echo "ok 2 - b"; echo 1..2; exit 1'
expect "plan 1..3, 2 checks" failed "planned 3, ran 2" \
	bash -c 'echo 1..3; echo "ok 1 - a"; echo "ok 2 - b"'
expect "no plan" failed "printed no plan" \
	bash -c 'echo "ok 1 - a"; echo "ok 2 - b"'
expect "0 checks, exit 0" failed "ran no checks" \
	bash -c 'echo "# nothing to see"'
expect "plan 1..0 without SKIP" failed "ran no checks" \
	bash -c 'echo 1..0'
expect "1..0 # SKIP" skipped - \
	bash -c 'echo "1..0 # SKIP not here"'
expect "1..0 # SKIP, exit 3" failed "exited 3" \
	bash -c 'echo "1..0 # SKIP not here"; exit 3'
expect "good group, plan first" passed - \
	bash -c 'echo 1..2; echo "ok 1 - a"; echo "ok 2 - b"'
expect "good group, plan last, one skip" passed - \
	bash -c 'echo "ok 1 - a"; echo "ok 2 - b # SKIP no widget"; echo 1..2'
expect "only skipped checks" skipped - \
	bash -c 'echo "ok - a # skip no widget"; echo 1..1'
expect "killed by SIGSEGV" failed "exited 139 (SIGSEGV)" \
	bash -c 'ulimit -c 0; echo 1..3; echo "ok 1 - a"; kill -SEGV $$; echo "ok 2 - b"'
expect "killed by SIGKILL" failed "exited 137 (SIGKILL)" \
	bash -c 'echo "ok 1 - a"; echo 1..1; kill -KILL $$'
expect "not ok, exit 0" failed - \
	bash -c 'echo "ok 1 - a"; echo "not ok 2 - b"; echo 1..2'
expect "not ok, exit 1 (the usual)" failed - \
	bash -c 'echo "not ok 1 - a"; echo 1..1; exit 1'
expect "not ok, exit 2" failed "exited 2" \
	bash -c 'echo "not ok 1 - a"; echo 1..1; exit 2'
expect "plan in the middle" failed "in the middle" \
	bash -c 'echo "ok 1 - a"; echo 1..2; echo "ok 2 - b"'
expect "two plans" failed "printed 2 plans" \
	bash -c 'echo 1..1; echo "ok 1 - a"; echo 1..1'
expect "Bail out!" failed "Bail out!" \
	bash -c 'echo 1..1; echo "ok 1 - a"; echo "Bail out! no database"'
expect "a command that does not exist" failed "exited 127" \
	"$tmp/no-such-test"
TAP_GROUP_SECONDS=1 expect "a group that hangs" failed "exited 124" \
	bash -c 'echo 1..1; echo "ok 1 - a"; sleep 60'
grep -q '^not ok - a group that hangs: still running after 1 s' "$TAP_LAST_LOG"
say $? "a hung group is stopped at TAP_GROUP_SECONDS and its log says so" "$tmp/detail"
expect "checks on stderr count too" passed - \
	bash -c 'echo 1..2; echo "ok 1 - a"; echo "ok 2 - b" >&2'
[[ -f $TAP_LOG_DIR/2_oks__plan__exit_1.log ]]
say $? "the group's output is in a log named after it" "$tmp/detail"
grep -q '^ok 2 - b$' "$TAP_LOG_DIR/checks_on_stderr_count_too.log"
say $? "the log holds stdout and stderr" "$TAP_LOG_DIR/checks_on_stderr_count_too.log"
expect "2 oks, plan, exit 1" failed "exited 1" bash -c 'echo "ok 1 - a"; echo 1..1; exit 1'
[[ $TAP_LAST_LOG == "$TAP_LOG_DIR/2_oks__plan__exit_1-2.log" ]]
say $? "a second group of the same name gets a log of its own" "$tmp/detail"
grep -q "log: $TAP_LAST_LOG" "$tmp/runner.out"
say $? "a failed group's log is named in the output" "$tmp/runner.out"

# --- the totals ---------------------------------------------------------------------------------
tap_reset
{
	run_group good bash -c 'echo 1..3; echo "ok 1 - a"; echo "ok 2 - b"; echo "ok 3 - c # SKIP x"'
	run_group skip bash -c 'echo "1..0 # SKIP not root"'
	run_group bad bash -c 'echo 1..3; echo "ok 1 - a"; echo "not ok 2 - b"; exit 1'
	tap_summary
	echo "summary returned $?"
} >"$tmp/summary" 2>&1
[[ $TAP_TOTAL_PASS == 3 && $TAP_TOTAL_FAIL == 2 && $TAP_TOTAL_SKIP == 2 ]]
say $? "totals: 3 passed, 2 failed (a not ok, 1..3 with 2 checks), 2 skipped ($TAP_TOTAL_PASS, $TAP_TOTAL_FAIL, $TAP_TOTAL_SKIP)" "$tmp/summary"
grep -q '^3 passed, 2 failed, 2 skipped$' "$tmp/summary" && grep -q '^summary returned 1$' "$tmp/summary"
say $? "the summary says so and fails" "$tmp/summary"
grep -q '^# failed groups: bad$' "$tmp/summary"
say $? "the failed group is listed" "$tmp/summary"
grep -q '^# skips: good (1), skip (whole group: not root)$' "$tmp/summary"
say $? "the skips are listed by group" "$tmp/summary"
grep -q '^not ok - bad: planned 3, ran 2$' "$tmp/summary"
say $? "the runner names what went wrong" "$tmp/summary"
tap_reset
{
	run_group good bash -c 'echo 1..1; echo "ok 1 - a"'
	tap_fail prerequisite "missing"
	tap_summary
	echo "summary returned $?"
} >"$tmp/summary" 2>&1
grep -q '^1 passed, 1 failed, 0 skipped$' "$tmp/summary" && grep -q '^summary returned 1$' "$tmp/summary"
say $? "a failure outside the groups fails the run" "$tmp/summary"
tap_reset
{
	run_group good bash -c 'echo 1..1; echo "ok 1 - a"'
	run_group skip bash -c 'echo "1..0 # SKIP not root"'
	tap_summary
	echo "summary returned $?"
} >"$tmp/summary" 2>&1
grep -q '^summary returned 0$' "$tmp/summary"
say $? "only passes and skips: the summary succeeds" "$tmp/summary"

# --- tests/integration/lib.sh --------------------------------------------------------------------
# shell groups as the integration tests write them: bash -c SCRIPT LIB
lib() { expect "lib.sh: $1" "$2" "$3" bash -c "source \"\$0\"; $4" "$LIB"; }
printf '#!/bin/sh\necho "ok 1 - from pgtest"\n' >"$tmp/pgtest"
chmod +x "$tmp/pgtest"
lib "check, finish" passed - 'check a true; check b true; finish'
grep -qx '1..2' "$TAP_LAST_LOG"
say $? "finish prints the plan 1..2" "$TAP_LAST_LOG"
lib "a failing check" failed - 'check a true; check b false; finish'
lib "a script that ends before finish" failed "printed no plan" 'check a true; exit 0'
lib "a script that dies before finish" failed "exited 139 (SIGSEGV)" 'ulimit -c 0; check a true; kill -SEGV $$; finish'
lib "check_skip" passed - 'check a true; check_skip b "no widget"; finish'
lib "TAP printed by hand (as core.sh's suites.sh) counts in the plan" passed - \
	'check a true; echo "ok - by hand"; echo "not ok - broken by hand" >/dev/null; finish'
lib "a not ok printed by hand fails the group" failed - 'check a true; echo "not ok - by hand"; finish'
lib "run_tap: a program with its plan" passed - \
	'check a true; run_tap bash -c "echo 1..2; echo ok 1 - x; echo ok 2 - y"; finish'
grep -c '^1\.\.' "$TAP_LAST_LOG" | grep -qx 1 && grep -qx 'ok - x' "$TAP_LAST_LOG"
say $? "run_tap keeps the program's plan out of the group and drops its numbers" "$TAP_LAST_LOG"
lib "run_tap: a program without a plan" failed "log:printed no plan" \
	'run_tap bash -c "echo ok 1 - x"; finish'
lib "run_tap: a program whose plan is not its number of checks" failed "log:planned 3, ran 1" \
	'run_tap bash -c "echo 1..3; echo ok 1 - x"; finish'
lib "run_tap: a program killed by a signal" failed "log:exited 139 (SIGSEGV)" \
	'run_tap bash -c "ulimit -c 0; echo ok 1 - x; kill -SEGV \$\$; echo 1..2"; finish'
lib "run_tap: a program exiting 3 after all its checks passed" failed "log:exited 3" \
	'run_tap bash -c "echo ok 1 - x; echo 1..1; exit 3"; finish'
lib "run_tap: a program exiting 1 after a not ok" failed - \
	'run_tap bash -c "echo not ok 1 - x; echo 1..1; exit 1"; finish'
lib "run_tap: a program printing nothing" failed "log:ran no checks" 'check a true; run_tap true; finish'
lib "run_tap: a program skipped as a whole" passed - \
	'check a true; run_tap bash -c "echo \"1..0 # SKIP needs a server\""; finish'
grep -q '# SKIP needs a server$' "$TAP_LAST_LOG"
say $? "run_tap turns the program's 1..0 # SKIP into a skip" "$TAP_LAST_LOG"
lib "run_tap: a program of PW_TAP_NO_PLAN (pgtest here) without a plan" passed - \
	"PW_TAP_NO_PLAN=(pgtest); run_tap \"$tmp/pgtest\" arg; finish"
lib "run_tap: the same program crashing" failed "log:exited 139 (SIGSEGV)" \
	"PW_TAP_NO_PLAN=(pgtest); run_tap bash -c 'ulimit -c 0; \"$tmp/pgtest\"; kill -SEGV \$\$' pgtest; finish"
lib "run_tap: a program not on that list without a plan" failed "log:no plan" \
	"run_tap \"$tmp/pgtest\" arg; finish"
# finish's plan when the output is not a file: what check/run_tap counted
out=$(bash -c 'source "$0"; check a true; echo "ok - by hand"; run_tap bash -c "echo 1..1; echo ok 1 - x"; finish' "$LIB" | tail -1)
[[ $out == 1..2 ]]
say $? "into a pipe, finish plans what check and run_tap ran (got $out)"

# --- tests/bpf/lib.sh not as root ----------------------------------------------------------------
# shellcheck disable=SC2016 # expanded by the bash -c below
BPFCMD='source "$0"; source "${0%/integration/lib.sh}/bpf/lib.sh"; bpf_setup selftest; echo "ok - ran as root"; finish'
if [[ $EUID -ne 0 ]]; then
	expect "bpf/lib.sh, not root" skipped - bash -c "$BPFCMD" "$LIB"
elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$LIB"; then
	expect "bpf/lib.sh, not root (as nobody)" skipped - \
		setpriv --reuid=65534 --regid=65534 --clear-groups env TMPDIR="$tmp" bash -c "$BPFCMD" "$LIB"
else
	n=$((n + 1))
	echo "ok $n - bpf/lib.sh, not root # SKIP cannot run as nobody here (setpriv, or $LIB not readable)"
fi

echo "1..$n"
((nfail == 0))
