#!/usr/bin/env bash
# Runs every test group and prints the total as "N passed, N failed".
# Groups: unit (pure C), integration (real PostgreSQL 15, pgwardd, real clients, and the
# regression/isolation/libpq_pipeline differential; the policy corpus and its end-to-end
# checks), bpf (the eBPF redirect, as root).
# Environment: BUILD (build dir), PGWARD_SUITES=0 skips the PostgreSQL suites differential.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export BUILD=${BUILD:-build}
pass=0
fail=0
failed_groups=()

tally() { # name, output file, exit code
	local p f
	p=$(grep -c '^ok ' "$2")
	f=$(grep -c '^not ok ' "$2")
	if [[ $3 -ne 0 && $f -eq 0 ]]; then
		echo "not ok - $1 exited $3 without reporting a failure"
		f=1
	fi
	pass=$((pass + p))
	fail=$((fail + f))
	[[ $f -eq 0 ]] || failed_groups+=("$1")
	printf '# %-28s %4d passed, %d failed\n' "$1" "$p" "$f"
}

run_group() { # name, command...
	local name=$1 out rc start
	shift
	out=$(mktemp)
	start=$(date +%s)
	echo "# --- $name"
	"$@" 2>&1 | tee "$out" | grep -E '^(not ok|#   )' || true
	rc=${PIPESTATUS[0]}
	tally "$name ($(($(date +%s) - start)) s)" "$out" "$rc"
	rm -f "$out"
}

# PostgreSQL's own test sources (Debian's source package): the suites differential and the
# analyser's regression corpus use them
if [[ ${PGWARD_SUITES:-1} != 0 ]]; then
	if env_out=$(scripts/pgsrc.sh --print-env); then
		eval "$env_out"
		export PGWARD_REGRESS_SQL=$PGSRC_DIR/src/test/regress/sql
	else
		echo "not ok - scripts/pgsrc.sh could not provide PostgreSQL's test sources"
		fail=$((fail + 1))
	fi
fi

for t in "$BUILD"/tests/test_*; do
	[[ -x $t && $t != *.d ]] || continue
	run_group "unit/$(basename "$t")" "$t"
done
run_group integration/core tests/integration/core.sh
run_group integration/policy tests/integration/policy.sh
for t in tests/bpf/*.sh; do
	[[ -e $t && $t != */lib.sh ]] || continue
	run_group "bpf/$(basename "$t" .sh)" "$t"
done

echo
if ((${#failed_groups[@]})); then
	echo "# failed groups: ${failed_groups[*]}"
fi
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
