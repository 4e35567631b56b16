#!/usr/bin/env bash
# The fuzzing campaign of `make fuzz`: each harness of FUZZ_TARGETS (default: all) runs for
# FUZZ_SECONDS (default 300) from its working corpus build/fuzz/corpus/<name>/, which keeps
# what earlier runs found, plus the regression inputs of tests/fuzz/<name>/ (but the known
# crashers, crash-*) and the seeds made from the project's files (tests/fuzz/lib.sh;
# PGWARD_REGRESS_SQL adds PostgreSQL's regression SQL). A run stops at its first crash; the
# input is copied to build/fuzz/crashes/<name>/ and reported. Prints, per harness, the
# executions done and the crashes found; exits 1 when there was one. Logs are in
# build/fuzz/logs/. Expects the harnesses built (make fuzz-build; `make fuzz` does both).
set -uo pipefail
# shellcheck source=tests/fuzz/lib.sh
source "$(dirname "$0")/lib.sh"

secs=${FUZZ_SECONDS:-300}
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || { echo "fuzz.sh: FUZZ_SECONDS must be a positive integer" >&2; exit 2; }
mapfile -t names < <(fuzz_names)
[[ -z ${FUZZ_TARGETS:-} ]] || read -ra names <<<"$FUZZ_TARGETS"

W=$(mktemp -d /tmp/pgward-fuzz.XXXXXX) || exit 1
trap 'rm -rf "$W"' EXIT
export TMPDIR=$W/tmp
mkdir -p "$TMPDIR" "$FUZZ_BUILD/crashes" "$FUZZ_BUILD/logs"

total_crashes=0
report=()
for name in "${names[@]}"; do
	bin=$FUZZ_BUILD/fuzz_$name
	if [[ ! -x $bin ]]; then
		echo "fuzz.sh: no harness $bin (make fuzz-build)" >&2
		report+=("fuzz_$name: not built")
		total_crashes=$((total_crashes + 1))
		continue
	fi
	corpus=$FUZZ_BUILD/corpus/$name
	seeds=$FUZZ_BUILD/seeds/$name
	rm -rf "$seeds"
	fuzz_derived_seeds "$name" "$seeds" 20000
	mkdir -p "$corpus"
	log=$FUZZ_BUILD/logs/$name.log
	echo "fuzz.sh: fuzz_$name for $secs s (corpus $corpus, log $log)"
	crashes=0
	fuzz_run "$name" "$secs" "$corpus" "$W/$name.artifacts" "$log" "$seeds"
	for f in "$W/$name.artifacts"/*; do
		[[ -f $f ]] || continue
		mkdir -p "$FUZZ_BUILD/crashes/$name"
		cp "$f" "$FUZZ_BUILD/crashes/$name/"
		echo "fuzz.sh: fuzz_$name: new crasher $FUZZ_BUILD/crashes/$name/${f##*/}: $FUZZ_SUMMARY"
		crashes=$((crashes + 1))
	done
	if ((crashes == 0)) && [[ -n $FUZZ_SUMMARY ]]; then # failed without saving an input
		echo "fuzz.sh: fuzz_$name: failed without a saved input: $FUZZ_SUMMARY"
		crashes=1
	fi
	total_crashes=$((total_crashes + crashes))
	report+=("fuzz_$name: $FUZZ_EXECS executions, crashes $crashes (corpus $FUZZ_CORPUS, $FUZZ_RATE exec/s)")
done
echo "fuzz.sh: done ($secs s per harness)"
printf '  %s\n' "${report[@]}"
((total_crashes == 0))
