# shellcheck shell=bash
# Shared set-up of the eBPF tests (source after tests/integration/lib.sh):
#   bpf_setup NAME   as root: a throwaway cgroup v2 directory ($CG, named $CGNAME below the
#                    cgroup2 mount $CGROOT), a pin path ($PIN) and $IN_CG, a script that runs
#                    its arguments inside $CG; installs the clean-up (pgwardd stopped, the
#                    pins removed, the cgroup emptied and removed). Not root: says so loudly
#                    and exits 0 after the plan "1..0 # SKIP reason" (the tests are skipped,
#                    never faked; tests/run.sh counts and lists the skip).
#   in_cg CMD...     run CMD inside $CG

bpf_setup() {
	if [[ $EUID -ne 0 ]]; then
		echo "# SKIP: the eBPF tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN)" >&2
		echo "1..0 # SKIP not root ($1 needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN)"
		exit 0
	fi
	CGROOT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
	if [[ -z $CGROOT ]]; then
		mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && CGROOT=/sys/fs/cgroup
	fi
	CGNAME=pgward-$1-$$
	CG=$CGROOT/$CGNAME
	PIN=/sys/fs/bpf/pgward-$1-$$
	mkdir -p "$CG"
	IN_CG=$(mktemp "${TMPDIR:-/tmp}/pgward-in-cg.XXXXXX")
	printf '#!/bin/sh\necho $$ > "%s/cgroup.procs" && exec "$@"\n' "$CG" >"$IN_CG"
	chmod +x "$IN_CG"
	trap bpf_cleanup EXIT
}

in_cg() {
	"$IN_CG" "$@"
}

bpf_cleanup() {
	pw_cleanup
	sleep 0.2
	if [[ -d $CG ]]; then
		# move anything left back to the root, then remove the directory
		while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$CG/cgroup.procs"
		rmdir "$CG" 2>/dev/null
	fi
	rm -rf "$PIN" # unpinning the links detaches them
	rm -f "$IN_CG"
}
