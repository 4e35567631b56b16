#!/usr/bin/env bash
# `make install` into a DESTDIR, `make uninstall` out of it, and the systemd unit: the tree is
# exactly the manifest with its modes, the unit passes `systemd-analyze verify` without a
# word and `systemd-analyze security --offline` rates it, every capability it keeps is
# justified next to it, and the secrets are never put in a tree (made on the target only).
# Environment: BUILD (build directory with pgwardd and pgwardctl).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
# shellcheck source=lib.sh
source tests/integration/lib.sh
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$top/$BUILD
T=$(mktemp -d "${TMPDIR:-/tmp}/pgward-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
D=$T/root
unit=$D/usr/lib/systemd/system/pgwardd.service

make -s install BUILD="$BUILD" DESTDIR="$D" PREFIX=/usr >"$T/install.out" 2>&1
check "make install DESTDIR=... PREFIX=/usr succeeds" test $? -eq 0

# the tree: every file of the manifest, nothing else
expected() {
	BUILD=$BUILD PREFIX=/usr scripts/install.sh --manifest
	echo /etc/pgward/pgward.json
}
tree_is_manifest() {
	diff <(expected | sort) <(cd "$D" && find . -type f -printf '/%P\n' | sort) >&2
}
check "the tree holds exactly the manifest's files (and the example configuration)" tree_is_manifest

mode_is() { # MODE PATH
	local m
	m=$(stat -c %a "$D$2") && [[ $m == "$1" ]] || {
		echo "$2: mode ${m:-missing}, expected $1" >&2
		return 1
	}
}
check "pgwardd in sbin, 0755" mode_is 755 /usr/sbin/pgwardd
check "pgwardctl in bin, 0755" mode_is 755 /usr/bin/pgwardctl
check "/etc/pgward is 0700" mode_is 700 /etc/pgward
check "/etc/pgward/pgward.json is 0600" mode_is 600 /etc/pgward/pgward.json
check "/var/lib/pgward (recordings) is 0700" mode_is 700 /var/lib/pgward/recordings
check "/var/log/pgward (audit) is 0700" mode_is 700 /var/log/pgward
check "the unit is 0644" mode_is 644 /usr/lib/systemd/system/pgwardd.service
no_secret_in_tree() { ! ls "$D/etc/pgward/mask.key" "$D/etc/pgward/upstream.pw" 2>/dev/null | grep -q .; }
check "no secret in a DESTDIR tree (mask.key, upstream.pw are made on the target)" no_secret_in_tree
installed_binary_runs() { "$D/usr/sbin/pgwardd" --version | grep -q '^pgwardd [0-9]'; }
check "the installed pgwardd runs (--version)" installed_binary_runs
man_pages() {
	local p
	for p in man8/pgwardd.8.gz man8/pgwardctl.8.gz man5/pgward.json.5.gz; do
		gzip -dc "$D/usr/share/man/$p" >"$T/page" && grep -q '^\.TH' "$T/page" || {
			echo "$p: not a gzipped man page" >&2
			return 1
		}
	done
	MANPATH=$D/usr/share/man man -w pgward.json | grep -q "$D/usr/share/man/man5/pgward.json.5.gz"
}
check "man pages pgwardd(8), pgwardctl(8), pgward.json(5) installed, gzipped, found by man" man_pages
completion() {
	bash -c "source '$D/usr/share/bash-completion/completions/pgwardctl' && complete -p pgwardctl" |
		grep -q pgwardctl
}
check "bash completion for pgwardctl installed and loadable" completion

# the unit: paths substituted, verify silent (its binary at the tree's path)
unit_paths() {
	grep -qx 'ExecStart=/usr/sbin/pgwardd --config /etc/pgward/pgward.json --keep-pinned' "$unit" &&
		grep -qx "ExecReload=/bin/sh -c 'kill -HUP \"\$MAINPID\"'" "$unit" && ! grep -q '@[A-Z]*@' "$unit"
}
check "unit: ExecStart with --keep-pinned, ExecReload = SIGHUP, no @VAR@ left" unit_paths
verify_silent() {
	mkdir -p "$T/v"
	sed "s#/usr/sbin/pgwardd#$D/usr/sbin/pgwardd#" "$unit" >"$T/v/pgwardd.service"
	cp "$D/usr/lib/systemd/system/pgward.slice" "$T/v/"
	local out
	out=$(systemd-analyze verify --man=no "$T/v/pgwardd.service" "$T/v/pgward.slice" 2>&1) &&
		[[ -z $out ]] || {
		echo "systemd-analyze verify: $out" >&2
		return 1
	}
}
check "systemd-analyze verify: the unit and the slice, not a warning" verify_silent
verify_catches() { # a test that can fail: a misspelt key is reported
	sed 's/^NoNewPrivileges=/NoNewPrivilege=/' "$T/v/pgwardd.service" >"$T/v/bad.service"
	systemd-analyze verify --man=no "$T/v/bad.service" 2>&1 | grep -q "Unknown key 'NoNewPrivilege'"
}
check "systemd-analyze verify reports a misspelt key (the check can fail)" verify_catches
exposure() {
	local out score
	out=$(systemd-analyze security --offline=true --no-pager "$T/v/pgwardd.service" 2>&1)
	score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
	echo "# systemd-analyze security: exposure $score (0 best, 10 worst)" >&3
	[[ -n $score ]] && awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }'
}
check "systemd-analyze security --offline: exposure at most 4.0 (OK)" exposure 3>&1
hardening() {
	local k
	for k in 'ProtectSystem=strict' 'NoNewPrivileges=yes' 'PrivateTmp=yes' 'Type=notify' \
		'PrivateMounts=yes' 'SecureBits=noroot-locked' 'StartLimitIntervalSec=0' \
		'ReadWritePaths=/sys/fs/bpf' 'StateDirectory=pgward' 'LogsDirectory=pgward' \
		'RuntimeDirectory=pgward' 'ConfigurationDirectory=pgward' 'UMask=0077' \
		'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6' 'ProtectControlGroups=yes' \
		'SystemCallArchitectures=native'; do
		grep -qx "$k" "$unit" || {
			echo "missing: $k" >&2
			return 1
		}
	done
	grep -q '^SystemCallFilter=@system-service ' "$unit"
}
check "unit: ProtectSystem=strict with the paths it writes, NoNewPrivileges, PrivateTmp, address families, system calls" hardening
caps_justified() {
	local caps c bad=0
	caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")
	[[ -n $caps ]] || return 1
	for c in $caps; do
		grep -qE "^#   $c +[a-z]" "$unit" || {
			echo "$c has no justification comment in the unit" >&2
			bad=1
		}
	done
	# and nothing justified that is not kept
	for c in $(sed -n 's/^#   \(CAP_[A-Z_]*\) .*/\1/p' "$unit"); do
		[[ " $caps " == *" $c "* ]] || {
			echo "$c is justified but not in CapabilityBoundingSet" >&2
			bad=1
		}
	done
	# pgwardd's own start-up check names the kernel-side four: all kept
	for c in CAP_BPF CAP_NET_ADMIN CAP_PERFMON CAP_SYS_ADMIN; do
		[[ " $caps " == *" $c "* ]] || {
			echo "$c (pgwardd refuses to start without it) not kept" >&2
			bad=1
		}
	done
	return $bad
}
check "every capability of CapabilityBoundingSet is justified in a comment, and only those" caps_justified
ambient_as_bounding() {
	# SecureBits=noroot*: uid 0 alone grants nothing, so the capabilities must be ambient ones
	grep -q '^SecureBits=noroot' "$unit" || return 0
	[[ $(sed -n 's/^AmbientCapabilities=//p' "$unit") == "$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")" ]]
}
check "with SecureBits=noroot, AmbientCapabilities is the bounding set (or pgwardd starts with none)" ambient_as_bounding
bpffs_writable() {
	# ProtectKernelTunables lists /sys/fs/bpf read-only, which ReadWritePaths does not undo
	! grep -qx 'ProtectKernelTunables=yes' "$unit" && grep -qx 'ReadWritePaths=/sys/fs/bpf' "$unit" &&
		grep -q '^ReadOnlyPaths=/sys ' "$unit"
}
check "bpffs stays writable: no ProtectKernelTunables, /sys read-only otherwise" bpffs_writable

make -s uninstall BUILD="$BUILD" DESTDIR="$D" PREFIX=/usr >"$T/uninstall.out" 2>&1
check "make uninstall DESTDIR=... succeeds" test $? -eq 0
only_config_left() {
	local left
	left=$(cd "$D" && find . -type f -printf '/%P\n')
	[[ $left == /etc/pgward/pgward.json ]] || {
		echo "left after uninstall: $left" >&2
		return 1
	}
}
check "make uninstall removes every installed file but the configuration" only_config_left
finish
