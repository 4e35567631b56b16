#!/usr/bin/env bash
# Install the Debian packages pgward's build and tests need: only those that are missing.
#
#   scripts/deps.sh                  install what is missing (nothing else is touched)
#   scripts/deps.sh --if-missing     the same; returns at once when nothing is missing
#   scripts/deps.sh --dry-run        print the plan (what apt would add) and change nothing
#   scripts/deps.sh --no-upgrades    stop instead when a missing package needs a newer
#                                    version of one the machine has
#   scripts/deps.sh --list           print the package list and exit
#
# What it promises:
# - Packages already installed are never named to apt, never upgraded, never removed: the
#   missing ones are found with dpkg-query, and only they are given to
#   `apt-get install --no-upgrade --no-install-recommends`. apt's plan is simulated first
#   (apt-get -s). An installed package is upgraded only when a missing one needs it (a -dev
#   package needs the library of its own version): the plan names each such upgrade before
#   apt runs, and --no-upgrades stops there instead; a plan that removes anything is always
#   refused.
# - No service is left running or enabled by the install: a temporary policy-rc.d denies
#   every service start while apt runs (unless the machine has one of its own, left in
#   charge), and afterwards every systemd unit or init script that the newly installed
#   packages brought (e.g. pgbouncer.service, postgresql.service) is disabled and stopped.
#   Units that existed before the install are left exactly as they were.
# - If this install created PostgreSQL's default cluster (15/main), it is set to start
#   manually; it is never dropped. Clusters that existed before are not touched. The tests
#   use their own throwaway clusters (scripts/pgtmp.sh) on free ports.
#
# Idempotent; runs as root (or through passwordless sudo) with no TTY. `apt-get update` runs
# only when something is missing and the package lists are missing or older than a day, or
# when an install attempt failed with the lists we had. --dry-run needs no root and does not
# update the lists. DEPS_PACKAGES (space-separated) replaces the package list (for tests).
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
	# the control plane's tests: the metrics scrape (curl, the Prometheus parser), the man
	# page's rendering check (man-db, groff)
	curl python3-prometheus-client man-db groff-base
	# shipping and its tests: make deb (dpkg-dev above), the unit's checks (systemd-analyze),
	# the installed daemon's system calls (strace), the man pages' lint (mandoc), make image
	# (a Debian root file system, then an OCI image: buildah, podman on runc)
	# (and the unit under a real systemd: a booted Debian root in systemd-nspawn)
	systemd strace mandoc debootstrap debian-archive-keyring buildah podman runc systemd-container
	# the Kubernetes manifests' offline validation (Node.js; its packages by npm ci), the
	# sidecar's tools (jq, nsenter)
	nodejs jq util-linux
)
# npm comes with some Node.js builds (NodeSource's) and conflicts there with Debian's npm
command -v npm >/dev/null || PACKAGES+=(npm)

if [[ -n ${DEPS_PACKAGES:-} ]]; then
	read -r -a PACKAGES <<<"$DEPS_PACKAGES"
fi

LISTS_MAX_AGE_MIN=1440
PG_MAJOR=15

log() { printf 'deps.sh: %s\n' "$*" >&2; }
die() {
	printf 'deps.sh: error: %s\n' "$*" >&2
	exit 1
}

usage() {
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
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

# The one install command: only the packages given (the missing ones), nothing upgraded.
INSTALL_ARGS=(--no-install-recommends --no-upgrade install)
apt_install() {
	"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" -q -y \
		"${INSTALL_ARGS[@]}" "$@"
}

# apt's plan for installing the missing packages, simulated (no root, nothing changes):
# sets PLAN_NEW (packages apt would add: the missing ones and their dependencies),
# PLAN_UPGRADE (installed packages it would upgrade, "name (old -> new)") and PLAN_REMOVE.
# Returns non-zero when apt cannot make a plan (output in PLAN_ERR).
simulate() {
	local out
	PLAN_NEW=()
	PLAN_UPGRADE=()
	PLAN_REMOVE=()
	PLAN_ERR=
	if ! out=$(LC_ALL=C apt-get -s -q "${INSTALL_ARGS[@]}" "$@" 2>&1); then
		PLAN_ERR=$out
		return 1
	fi
	# Inst NAME (NEW ...)            a package that is not installed
	# Inst NAME [OLD] (NEW ...)      an upgrade (or downgrade) of an installed package
	# Remv NAME [OLD]                a removal
	local kind name rest
	while read -r kind name rest; do
		case $kind in
		Inst)
			if [[ $rest == \[* ]]; then
				local old=${rest#[}
				old=${old%%]*}
				local newv=${rest#*(}
				newv=${newv%% *}
				PLAN_UPGRADE+=("$name ($old -> $newv)")
			else
				PLAN_NEW+=("$name")
			fi
			;;
		Remv) PLAN_REMOVE+=("$name") ;;
		esac
	done <<<"$out"
}

print_plan() { # missing...
	printf 'plan: %d of %d packages missing\n' "$#" "${#PACKAGES[@]}"
	printf 'missing: %s\n' "$*"
	printf 'command: apt-get %s %s\n' "${INSTALL_ARGS[*]}" "$*"
	printf 'new: %s\n' "${PLAN_NEW[*]:-(none)}"
	local up=("(none)")
	[[ ${#PLAN_UPGRADE[@]} -eq 0 ]] || up=("${PLAN_UPGRADE[@]/%/,}")
	printf 'upgrade: %s\n' "${up[*]%,}"
	printf 'remove: %s\n' "${PLAN_REMOVE[*]:-(none)}"
	if [[ ${#PLAN_REMOVE[@]} -gt 0 ]]; then
		printf 'verdict: refused (apt would remove installed packages)\n'
	elif [[ ${#PLAN_UPGRADE[@]} -gt 0 && ${NO_UPGRADES:-0} -eq 1 ]]; then
		printf 'verdict: refused (--no-upgrades: installed packages would be upgraded)\n'
	elif [[ ${#PLAN_UPGRADE[@]} -gt 0 ]]; then
		printf 'verdict: would install, upgrading only what the missing packages need\n'
	elif [[ $# -eq 0 ]]; then
		printf 'verdict: nothing to do\n'
	else
		printf 'verdict: would install\n'
	fi
	printf 'services: starts denied during the install (policy-rc.d); units the new packages bring are disabled and stopped afterwards\n'
}

POLICY_RC=/usr/sbin/policy-rc.d
SYSTEMD_RUNTIME=/run/systemd/system # exists when systemd is the running init
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

# Installed packages ("ii"), one per line, sorted.
installed_all() {
	dpkg-query -W -f '${db:Status-Abbrev} ${binary:Package}\n' 2>/dev/null |
		awk '$1 == "ii" { print $2 }' | sort -u
}

# Unit files systemd knows and their state ("name state"), and the init scripts.
unit_states() {
	if command -v systemctl >/dev/null 2>&1; then
		systemctl list-unit-files --no-legend --no-pager 2>/dev/null | awk '{ print $1, $2 }'
	fi
	local f
	for f in /etc/init.d/*; do
		[[ -x $f ]] && printf 'initd:%s present\n' "${f##*/}"
	done
	return 0
}

# The services the packages of this install brought: every systemd unit (not a template) and
# init script of the newly installed packages. One that systemd did not know before is
# disabled and, if it runs, stopped; one it knew (a package left in "rc" state) gets its
# enablement back: disabled again unless it was enabled before. A unit enabled before the
# install is left exactly as it was.
tame_new_services() { # units-before new-packages...
	local before=$1 pkg f unit name prev seen=" " systemd_up=0
	shift
	[[ -d $SYSTEMD_RUNTIME ]] && systemd_up=1
	for pkg in "$@"; do
		while read -r f; do
			case $f in
			/lib/systemd/system/*.service | /usr/lib/systemd/system/*.service | \
				/lib/systemd/system/*.socket | /usr/lib/systemd/system/*.socket | \
				/lib/systemd/system/*.timer | /usr/lib/systemd/system/*.timer)
				unit=${f##*/}
				[[ $unit != *@.* ]] || continue
				;;
			/etc/init.d/*) unit=${f##*/}.service ;;
			*) continue ;;
			esac
			[[ $seen != *" $unit "* ]] || continue
			seen+="$unit "
			name=${unit%.service}
			prev=$(awk -v u="$unit" '$1 == u { print $2; exit }' <<<"$before")
			if [[ -z $prev ]] && grep -qxF "initd:$name present" <<<"$before"; then
				prev=initd
			fi
			case $prev in
			enabled | enabled-runtime)
				log "$unit was enabled before this install: left as it is"
				continue
				;;
			"") log "$unit came with $pkg: disabling it (and stopping it if it runs)" ;;
			*) log "$unit existed before this install ($prev): disabling it again" ;;
			esac
			if command -v systemctl >/dev/null 2>&1; then
				"${SUDO[@]}" systemctl disable --quiet "$unit" 2>/dev/null || true
				if [[ -z $prev && $systemd_up -eq 1 ]]; then
					"${SUDO[@]}" systemctl stop "$unit" 2>/dev/null || true
				fi
			fi
			if [[ $systemd_up -eq 0 && -x /etc/init.d/$name ]]; then
				if [[ -z $prev ]] && "/etc/init.d/$name" status >/dev/null 2>&1; then
					"${SUDO[@]}" "/etc/init.d/$name" stop >/dev/null 2>&1 || true
				fi
				"${SUDO[@]}" update-rc.d "$name" disable >/dev/null 2>&1 || true
			fi
		done < <(dpkg -L "$pkg" 2>/dev/null)
	done
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
	local if_missing=0 dry_run=0 arg
	NO_UPGRADES=0
	for arg in "$@"; do
		case $arg in
		--if-missing) if_missing=1 ;;
		--dry-run | --plan) dry_run=1 ;;
		--no-upgrades) NO_UPGRADES=1 ;;
		--allow-upgrades) ;; # the default now: only what the missing packages need
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

	local missing=()
	mapfile -t missing < <(missing_packages)
	if [[ ${#missing[@]} -eq 0 ]]; then
		if [[ $dry_run -eq 1 ]]; then
			PLAN_NEW=() PLAN_UPGRADE=() PLAN_REMOVE=()
			print_plan
		elif [[ $if_missing -eq 0 ]]; then
			log "all ${#PACKAGES[@]} packages are installed; nothing to do"
		fi
		return 0
	fi
	log "missing: ${missing[*]}"

	if [[ $dry_run -eq 1 ]]; then
		if ! simulate "${missing[@]}"; then
			printf '%s\n' "$PLAN_ERR" >&2
			die "apt cannot plan the install with the current package lists (apt-get update may help)"
		fi
		print_plan "${missing[@]}"
		return 0
	fi

	need_root "${missing[*]}"

	local updated=0
	if lists_stale; then
		apt_update
		updated=1
	fi
	if ! simulate "${missing[@]}"; then
		if [[ $updated -eq 1 ]]; then
			printf '%s\n' "$PLAN_ERR" >&2
			die "apt cannot plan the install (package lists are fresh)"
		fi
		log "apt cannot plan the install; refreshing package lists and retrying"
		apt_update
		updated=1
		simulate "${missing[@]}" || {
			printf '%s\n' "$PLAN_ERR" >&2
			die "apt cannot plan the install after apt-get update"
		}
	fi
	print_plan "${missing[@]}" | sed 's/^/deps.sh: /' >&2
	if [[ ${#PLAN_REMOVE[@]} -gt 0 ]]; then
		die "apt would remove installed packages (${PLAN_REMOVE[*]}); not going on. Install ${missing[*]} yourself."
	fi
	if [[ ${#PLAN_UPGRADE[@]} -gt 0 && $NO_UPGRADES -eq 1 ]]; then
		die "the missing packages need newer versions of installed ones: ${PLAN_UPGRADE[*]}.
  --no-upgrades: not going on. Upgrade them yourself (apt-get install --only-upgrade ...)
  or run scripts/deps.sh without --no-upgrades."
	fi
	if [[ ${#PLAN_UPGRADE[@]} -gt 0 ]]; then
		log "the missing packages need newer versions of installed ones, upgraded with them: ${PLAN_UPGRADE[*]}"
	fi

	local before_clusters before_units before_pkgs
	before_clusters=$(existing_clusters)
	before_units=$(unit_states)
	before_pkgs=$(installed_all)

	trap unblock_service_starts EXIT
	trap 'unblock_service_starts; exit 130' INT
	trap 'unblock_service_starts; exit 143' TERM
	block_service_starts

	local rc=0
	apt_install "${missing[@]}" || rc=$?
	if [[ $rc -ne 0 && $updated -eq 0 ]]; then
		log "install failed; refreshing package lists and retrying"
		apt_update
		rc=0
		apt_install "${missing[@]}" || rc=$?
	fi

	# whatever happened, what the install added must not run or start at boot
	local new_pkgs=()
	mapfile -t new_pkgs < <(comm -13 <(printf '%s\n' "$before_pkgs") <(installed_all) | sed 's/:.*//')
	tame_new_services "$before_units" "${new_pkgs[@]}"
	unblock_service_starts
	tame_new_main_cluster "$before_clusters"
	[[ $rc -eq 0 ]] || die "apt-get install failed"

	mapfile -t missing < <(missing_packages)
	[[ ${#missing[@]} -eq 0 ]] || die "still not installed: ${missing[*]}"
	log "installed ${#new_pkgs[@]} new packages; all ${#PACKAGES[@]} needed are there"
}

# (sourced by tests/deps_plan.sh for its functions: main does not run then)
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
