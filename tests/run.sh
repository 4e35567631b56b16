#!/usr/bin/env bash
# Runs every test group and prints the total as "N passed, N failed, N skipped"; exits
# non-zero when anything failed.
# Groups, in order: runner/selftest (this runner's own bookkeeping, tests/runner_selftest.sh),
# unit (pure C), integration (real PostgreSQL 15, pgwardd, real clients, and the
# regression/isolation/libpq_pipeline differential; the policy corpus and its end-to-end
# checks), bpf (the eBPF redirect, as root).
#
# Adding a group is one line below:   run_group NAME CMD...
# CMD prints TAP (see tests/tap.sh): "ok - ..." / "not ok - ..." lines ("# SKIP reason" on an
# ok line for a skip), and a plan "1..N" at the start or the end ("1..0 # SKIP reason" for a
# group that cannot run here). Shell tests get all that from tests/integration/lib.sh (check,
# run_tap, and finish as their last line), C unit tests from tests/unit/check.h.
# A group fails when it exits non-zero, prints no plan, runs a number of checks other than
# its plan, runs none without "1..0 # SKIP", or prints a "not ok". Each group's whole output
# (stdout and stderr) is in $BUILD/test-logs/NAME.log (recreated on every run).
# Environment: BUILD (build dir), PGWARD_SUITES=0 skips the PostgreSQL suites differential.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
export BUILD=${BUILD:-build}
# shellcheck source=tests/tap.sh
source tests/tap.sh

TAP_LOG_DIR=$BUILD/test-logs
rm -rf "$TAP_LOG_DIR"
mkdir -p "$TAP_LOG_DIR" || exit 1

run_group runner/selftest tests/runner_selftest.sh
# the shape of the code: no include cycle, files and functions held to their sizes (debts
# listed with ceilings in tests/structure.py)
run_group structure /usr/bin/python3 tests/structure.py
# every C file formatted as .clang-format wants it (make format mends them)
run_group format bash -c 'if make -s format-check; then echo "ok - clang-format --dry-run --Werror on every C file"; else echo "not ok - clang-format: run make format"; fi; echo 1..1'

# PostgreSQL's own test sources (Debian's source package): the suites differential and the
# analyser's regression corpus use them
if [[ ${PGWARD_SUITES:-1} != 0 ]]; then
	if env_out=$(scripts/pgsrc.sh --print-env); then
		eval "$env_out"
		export PGWARD_REGRESS_SQL=$PGSRC_DIR/src/test/regress/sql
	else
		tap_fail pgsrc "scripts/pgsrc.sh could not provide PostgreSQL's test sources"
	fi
fi

# Unit tests: one group per tests/unit/test_*.c (a binary that is missing fails its group),
# except these, which need what only another group provides:
#   test_pgconn  needs a live PostgreSQL: integration/policy runs it (run_tap) against its cluster
UNIT_RUN_ELSEWHERE=(test_pgconn)
for src in tests/unit/test_*.c; do
	t=$(basename "$src" .c)
	if [[ " ${UNIT_RUN_ELSEWHERE[*]} " == *" $t "* ]]; then
		echo "# unit/$t: not a group of its own (see UNIT_RUN_ELSEWHERE in tests/run.sh)"
		continue
	fi
	run_group "unit/$t" "$BUILD/tests/$t"
done
# every example configuration of README.md, docs/configuration.md, docs/policy.md and examples/
# passes pgwardctl config check; the docs' links stay inside the repository and resolve
run_group examples tests/examples.sh
# the libFuzzer harnesses: their regression inputs, then a bounded run of each (make fuzz runs
# them for as long as asked)
run_group fuzz tests/fuzz/run.sh "${PGWARD_FUZZ_SECONDS:-10}"
run_group integration/core tests/integration/core.sh
run_group integration/policy tests/integration/policy.sh
# masking: the bypass corpus (tests/masking/) through psql and libpq in binary and text, the
# extended protocol message by message, hashes per key, copies left in the database
run_group integration/masking tests/integration/masking.sh
run_group integration/ctl tests/integration/ctl.sh
run_group integration/ctl_docs tests/integration/ctl_docs.sh
# the man pages: rendered without a warning, and every option and configuration key in them
run_group integration/man tests/integration/man.sh
# make install into a DESTDIR, make uninstall, the systemd unit (verify, security, capabilities)
run_group integration/install tests/integration/install.sh
# deploy/kubernetes/: every manifest against Kubernetes' own schemas (offline), the DaemonSet's
# required fields, the embedded policy, the pod-to-cgroup resolution for both cgroup drivers
run_group integration/k8s tests/integration/k8s.sh
run_group integration/control tests/integration/control.sh
run_group integration/fleet tests/integration/fleet.sh
# the audit trail: records of sessions and statements, the chain, rotation, SIGKILL, disk full
run_group integration/audit tests/integration/audit.sh
# session recordings: replay against psql's own output, after masking, max_bytes
run_group integration/recording tests/integration/recording.sh
# a daemon that stays up: 20,000 idle connections under a 1,024 start limit, out of descriptors,
# max_connections, big-statement fairness, escaped logs (about 2 minutes)
run_group integration/stayup tests/integration/stayup.sh
for t in tests/bpf/*.sh; do
	[[ $t != */lib.sh ]] || continue
	run_group "bpf/$(basename "$t" .sh)" "$t"
done

tap_summary
