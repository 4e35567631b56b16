# shellcheck shell=bash
# Shared helpers of the shell tests: TAP-ish reporting and pgwardd life cycle.
PW_PASS=0
PW_FAIL=0

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

# run_tap CMD...: a program printing ok/not ok lines itself; a crash counts as a failure.
run_tap() {
	local out rc
	out=$(timeout 300 "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -E '^(not )?ok ' || true
	PW_PASS=$((PW_PASS + $(grep -c '^ok ' <<<"$out")))
	PW_FAIL=$((PW_FAIL + $(grep -c '^not ok ' <<<"$out")))
	if [[ $rc -ne 0 ]] && ! grep -q '^not ok ' <<<"$out"; then
		echo "not ok - $* exited $rc"
		printf '%s\n' "$out" | tail -5 | sed 's/^/#   /'
		PW_FAIL=$((PW_FAIL + 1))
	fi
}

finish() {
	echo "# $PW_PASS passed, $PW_FAIL failed"
	[[ $PW_FAIL -eq 0 ]]
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
# listens, and arranges for it to be stopped when the shell exits.
pw_start_pgwardd() {
	local runner=()
	[[ -n ${PGWARD_VALGRIND:-} ]] && runner=(valgrind -q --error-exitcode=99)
	"${runner[@]}" "$BUILD/pgwardd" --config "$1" "${@:3}" >"$2" 2>&1 &
	PGWARDD_PID=$!
	PW_PIDS+=("$PGWARDD_PID")
	pw_wait_log "$2" 'worker(s) running' 10 || return 1
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
