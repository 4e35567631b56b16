#!/usr/bin/env bash
# Install the Debian packages pgward's build and tests need.
#
#   scripts/deps.sh               install (or upgrade to the candidate) every package
#   scripts/deps.sh --if-missing  do nothing, cheaply, when every package is installed
#   scripts/deps.sh --list        print the package list and exit
#
# Idempotent; runs as root (or through passwordless sudo) with no TTY.
# `apt-get update` runs only when the package lists are missing or older than
# a day, or when an install attempt failed with the lists we had.
#
# PostgreSQL: the distribution's default cluster is never started by this
# script (a temporary policy-rc.d blocks service starts during the install,
# unless the machine already has one) and never dropped.  If this install
# created the "main" cluster, it is set to start manually so that it stays
# out of the way after a reboot too.  Clusters that existed before are left
# exactly as they were.  The tests use their own throwaway clusters
# (scripts/pgtmp.sh) on free ports.
set -euo pipefail

PACKAGES=(
	build-essential clang llvm libbpf-dev libelf-dev zlib1g-dev libssl-dev
	libjwt-dev libpg-query-dev libjansson-dev bpftool libprotobuf-c-dev
	postgresql-15 postgresql-contrib postgresql-server-dev-15 postgresql-client-15
	libpq-dev pgbouncer openssl dpkg-dev bison flex python3 iproute2 procps
	# also used by scripts/pgsrc.sh, scripts/pgtmp.sh, tests/integration/suites.sh
	bzip2 xz-utils diffutils util-linux shellcheck
	# libFuzzer's runtime (libclang_rt.fuzzer) for clang: make fuzz, tests/fuzz/run.sh
	libclang-rt-dev
	# the format check of make check (tests/run.sh, group format)
	clang-format
)

LISTS_MAX_AGE_MIN=1440
PG_MAJOR=15

log() { printf 'deps.sh: %s\n' "$*" >&2; }
die() {
	printf 'deps.sh: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
}

# Packages of PACKAGES that are not fully installed ("ii"), one dpkg-query call.
missing_packages() {
	local installed
	installed=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' "${PACKAGES[@]}" 2>/dev/null |
		awk '$1 == "ii" { sub(/:.*/, "", $2); print $2 }' || true)
	local pkg
	for pkg in "${PACKAGES[@]}"; do
		grep -qxF -- "$pkg" <<<"$installed" || printf '%s\n' "$pkg"
	done
}

SUDO=()
need_root() {
	if [[ $EUID -ne 0 ]]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			SUDO=(sudo -n)
		else
			die "must run as root (or with passwordless sudo) to install: $*"
		fi
	fi
}

# Written after each successful update (apt may date list files by the
# mirror's Last-Modified, so their mtimes alone can look old).
UPDATE_STAMP=${PGWARD_CACHE:-/var/cache/pgward}/apt-update.stamp

# True when the package lists are missing or older than LISTS_MAX_AGE_MIN.
lists_stale() {
	local dir=/var/lib/apt/lists
	[[ -d $dir ]] || return 0
	find "$dir" -maxdepth 1 -type f -name '*Packages*' -print -quit | grep -q . || return 0
	if [[ -n $(find "$UPDATE_STAMP" -mmin "-$LISTS_MAX_AGE_MIN" 2>/dev/null) ]]; then
		return 1
	fi
	if find "$dir" -maxdepth 1 -type f \( -name '*Packages*' -o -name '*InRelease' -o -name '*_Release' \) \
		-mmin "-$LISTS_MAX_AGE_MIN" -print -quit | grep -q .; then
		return 1
	fi
	return 0
}

APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

apt_update() {
	log "apt-get update"
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" -q update
	"${SUDO[@]}" mkdir -p "$(dirname "$UPDATE_STAMP")"
	"${SUDO[@]}" touch "$UPDATE_STAMP"
}

apt_install() {
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" -q -y \
		--no-install-recommends install "$@"
}

POLICY_RC=/usr/sbin/policy-rc.d
OUR_POLICY_RC=0

# Block service starts during the install (the postgresql packages would
# otherwise start the default cluster), unless the machine already has a
# policy of its own, which is then left in charge.
block_service_starts() {
	if [[ -e $POLICY_RC ]]; then
		return 0
	fi
	printf '#!/bin/sh\n# temporary, written by pgward scripts/deps.sh\nexit 101\n' |
		"${SUDO[@]}" tee "$POLICY_RC" >/dev/null
	"${SUDO[@]}" chmod 755 "$POLICY_RC"
	OUR_POLICY_RC=1
}

unblock_service_starts() {
	if [[ $OUR_POLICY_RC -eq 1 ]]; then
		"${SUDO[@]}" rm -f "$POLICY_RC"
		OUR_POLICY_RC=0
	fi
}

# Names of existing clusters of PG_MAJOR (directories under /etc/postgresql/N).
existing_clusters() {
	local d
	for d in "/etc/postgresql/$PG_MAJOR"/*/; do
		[[ -f ${d}postgresql.conf ]] && basename "$d"
	done
	return 0
}

# A "main" cluster that appeared during this run was created by the package's
# postinst: keep it (never drop), but make it start only on demand.
tame_new_main_cluster() {
	local before=$1 startconf="/etc/postgresql/$PG_MAJOR/main/start.conf"
	[[ -f $startconf ]] || return 0
	if grep -qx main <<<"$before"; then
		return 0 # existed before us: not ours to touch
	fi
	log "the postgresql-$PG_MAJOR install created cluster $PG_MAJOR/main; setting it to start manually (not started, not dropped)"
	printf '# set by pgward scripts/deps.sh: pgward tests use their own clusters\nmanual\n' |
		"${SUDO[@]}" tee "$startconf" >/dev/null
}

main() {
	local if_missing=0 arg
	for arg in "$@"; do
		case $arg in
		--if-missing) if_missing=1 ;;
		--list)
			printf '%s\n' "${PACKAGES[@]}"
			return 0
			;;
		-h | --help)
			usage
			return 0
			;;
		*) die "unknown argument: $arg (try --help)" ;;
		esac
	done

	command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script needs Debian/apt"

	local missing
	missing=$(missing_packages)
	if [[ $if_missing -eq 1 && -z $missing ]]; then
		return 0
	fi
	if [[ -n $missing ]]; then
		log "missing: $(tr '\n' ' ' <<<"$missing")"
	fi

	need_root "${PACKAGES[*]}"

	local before
	before=$(existing_clusters)

	trap unblock_service_starts EXIT
	trap 'unblock_service_starts; exit 130' INT
	trap 'unblock_service_starts; exit 143' TERM
	block_service_starts

	local updated=0
	if lists_stale; then
		apt_update
		updated=1
	fi
	if ! apt_install "${PACKAGES[@]}"; then
		if [[ $updated -eq 1 ]]; then
			die "apt-get install failed (package lists are fresh)"
		fi
		log "install failed; refreshing package lists and retrying"
		apt_update
		apt_install "${PACKAGES[@]}" || die "apt-get install failed after apt-get update"
	fi

	unblock_service_starts
	tame_new_main_cluster "$before"

	missing=$(missing_packages)
	[[ -z $missing ]] || die "still not installed: $(tr '\n' ' ' <<<"$missing")"
	log "all ${#PACKAGES[@]} packages installed"
}

main "$@"
