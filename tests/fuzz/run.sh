#!/usr/bin/env bash
# The fuzz harnesses as a test group (TAP): for each tests/fuzz/fuzz_<name>.c,
#   (a) every regression input in tests/fuzz/<name>/ run once: an input that crashes (or
#       leaks, or aborts on a broken invariant) is "not ok", named;
#   (b) a coverage-guided run of SECONDS (default 10) from those inputs (but the known
#       crashers, crash-*) and the seeds made from the project's files (tests/fuzz/lib.sh): a
#       crash is "not ok", naming the saved input (copied to build/fuzz/crashes/<name>/).
# Builds the harnesses first (make fuzz-build). Exits non-zero when anything failed.
#
#   tests/fuzz/run.sh [SECONDS]
# Environment: PGWARD_REGRESS_SQL (a directory of PostgreSQL's regression .sql files: more SQL
# seeds), FUZZ_TARGETS (names to run, default all), FUZZ_SEED, FUZZ_TIMEOUT, FUZZ_EXTRA (see
# tests/fuzz/lib.sh).
set -uo pipefail
# shellcheck source=tests/fuzz/lib.sh
source "$(dirname "$0")/lib.sh"

secs=${1:-10}
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }

W=$(mktemp -d /tmp/pgward-fuzz-check.XXXXXX) || exit 1
trap 'rm -rf "$W"' EXIT
export TMPDIR=$W/tmp # the harnesses' fixture directories, gone with $W even after a crash
mkdir -p "$TMPDIR"

mapfile -t names < <(fuzz_names)
[[ -z ${FUZZ_TARGETS:-} ]] || read -ra names <<<"$FUZZ_TARGETS"
if ((${#names[@]} == 0)); then
	echo "1..0 # SKIP no harness in tests/fuzz"
	exit 0
fi

if ! fuzz_build "$W/build.log"; then
	echo "1..1"
	echo "not ok - the fuzz harnesses build (make fuzz-build)"
	tail -20 "$W/build.log" | sed 's/^/#   /'
	exit 1
fi

failed=0
echo "1..$((2 * ${#names[@]}))"
for name in "${names[@]}"; do
	bin=$FUZZ_BUILD/fuzz_$name
	if [[ ! -x $bin ]]; then
		echo "not ok - fuzz_$name: regression inputs (no harness $bin)"
		echo "not ok - fuzz_$name: ${secs} s coverage-guided run (no harness)"
		failed=1
		continue
	fi

	# (a) the regression inputs
	mapfile -t inputs < <(fuzz_inputs "$name")
	if ((${#inputs[@]} == 0)); then
		echo "ok - fuzz_$name: no regression inputs in tests/fuzz/$name # SKIP"
	elif fuzz_replay "$name" "$W/$name.replay.log" "$W/$name.replay" "${inputs[@]}"; then
		echo "ok - fuzz_$name: ${#inputs[@]} regression inputs run"
	else
		n=$(grep -c . <<<"$FUZZ_FAILED")
		list=${FUZZ_FAILED//"$FUZZ_TOP/"/}
		list=${list%$'\n'}
		list=${list//$'\n'/ }
		echo "not ok - fuzz_$name: $n of ${#inputs[@]} regression inputs fail: $list"
		while IFS= read -r line; do echo "#   $line"; done <<<"${FUZZ_SUMMARIES%$'\n'}"
		echo "#   reproduce: $bin FILE"
		failed=1
	fi

	# (b) a bounded coverage-guided run
	seeds=$W/$name.seeds
	fuzz_derived_seeds "$name" "$seeds" 2000 || echo "# fuzz_$name: derived seeds not made"
	nseeds=$(find "$seeds" -type f | wc -l)
	if fuzz_run "$name" "$secs" "$W/$name.corpus" "$W/$name.artifacts" "$W/$name.log" \
		"$seeds"; then
		echo "ok - fuzz_$name: ${secs} s coverage-guided run from $nseeds seeds"
	else
		saved=
		mkdir -p "$FUZZ_BUILD/crashes/$name"
		if [[ -n $FUZZ_ARTIFACT && -f $FUZZ_ARTIFACT ]]; then
			saved=$FUZZ_BUILD/crashes/$name/${FUZZ_ARTIFACT##*/}
			cp "$FUZZ_ARTIFACT" "$saved"
		fi
		echo "not ok - fuzz_$name: ${secs} s coverage-guided run: ${saved:-no input saved} ($FUZZ_SUMMARY)"
		grep -m1 '^INFO: Seed:' "$W/$name.log" | sed 's/^/#   /'
		[[ -z $saved ]] || echo "#   reproduce: $bin $saved"
		cp "$W/$name.log" "$FUZZ_BUILD/crashes/$name.log" 2>/dev/null &&
			echo "#   log: $FUZZ_BUILD/crashes/$name.log"
		failed=1
	fi
	echo "# fuzz_$name: $FUZZ_EXECS executions, corpus $FUZZ_CORPUS ($FUZZ_RATE exec/s)"
done
exit $failed
