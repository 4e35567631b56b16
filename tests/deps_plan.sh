#!/usr/bin/env bash
# scripts/deps.sh's plan against dpkg-query, without installing anything (--dry-run):
# nothing already installed is named to apt, nothing installed would be upgraded or removed
# without saying so, and a dry run changes nothing on the machine (dpkg's database, the
# enabled units, policy-rc.d). Runs as any user; needs Debian's dpkg and apt.
# shellcheck source-path=SCRIPTDIR disable=SC2016 # bash -c scripts take their arguments as $1...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=tests/integration/lib.sh
source tests/integration/lib.sh

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
	echo "1..0 # SKIP not a Debian machine (no dpkg-query or apt-get)"
	exit 0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/pw_deps.XXXXXX")
trap 'rm -rf "$T"' EXIT

is_installed() { [[ $(dpkg-query -W -f '${db:Status-Abbrev}' "$1" 2>/dev/null) == "ii"* ]]; }

# field NAME FILE: the value of "NAME: ..." in a plan
field() { sed -n "s/^$1: //p" "$2"; }

# the state a dry run must not change
machine_state() {
	md5sum /var/lib/dpkg/status | cut -d' ' -f1
	if command -v systemctl >/dev/null 2>&1; then
		systemctl list-unit-files --state=enabled --no-legend --no-pager 2>/dev/null | awk '{print $1}'
	fi
	md5sum /usr/sbin/policy-rc.d 2>/dev/null || echo "no policy-rc.d"
}

# plan_ok PLAN PACKAGES...: the plan's missing list is exactly the packages of PACKAGES that
# are not installed, and nothing apt would add is installed already
missing_is_exact() {
	local plan=$1 p want=() got
	shift
	for p in "$@"; do
		is_installed "$p" || want+=("$p")
	done
	got=$(field missing "$plan")
	if [[ $got != "${want[*]}" ]]; then
		echo "plan says missing: '$got'; dpkg-query says: '${want[*]}'" >&2
		return 1
	fi
}
nothing_installed_in() { # FIELD PLAN
	local p bad=()
	for p in $(field "$1" "$2"); do
		[[ $p == "(none)" ]] && continue
		is_installed "$p" && bad+=("$p")
	done
	[[ ${#bad[@]} -eq 0 ]] || {
		echo "already installed, yet in '$1': ${bad[*]}" >&2
		return 1
	}
}
command_is_safe() { # PLAN
	local cmd
	cmd=$(field command "$1")
	[[ $cmd == *--no-upgrade* ]] || {
		echo "no --no-upgrade in: $cmd" >&2
		return 1
	}
	[[ $cmd != *only-upgrade* && $cmd != *" upgrade"* && $cmd != *dist-upgrade* ]] || {
		echo "an upgrade in: $cmd" >&2
		return 1
	}
}
upgrades_named() { # PLAN
	local up verdict
	up=$(field upgrade "$1")
	verdict=$(field verdict "$1")
	# an upgrade a missing package needs is done (and named); nothing is refused for it
	if [[ $up == "(none)" ]]; then
		[[ $verdict != refused* ]]
	else
		[[ $verdict == "would install, upgrading only what the missing packages need" ]] || {
			echo "upgrades ($up) but verdict '$verdict'" >&2
			return 1
		}
	fi
}

# 1. the real package list
before=$(machine_state)
check "deps.sh --dry-run runs (no root needed, nothing installed)" \
	bash -c 'scripts/deps.sh --dry-run >"$1" 2>"$1.err"' _ "$T/plan"
mapfile -t pkgs < <(scripts/deps.sh --list)
check "plan: missing = the packages of deps.sh --list that dpkg-query does not show installed (${#pkgs[@]} packages)" \
	missing_is_exact "$T/plan" "${pkgs[@]}"
check "plan: no package apt would add is installed already" nothing_installed_in new "$T/plan"
check "plan: the install command has --no-upgrade and no upgrade" command_is_safe "$T/plan"
check "plan: an upgrade a missing package needs is named in the plan, never refused for" upgrades_named "$T/plan"

# 2. a list mixing installed packages (dpkg, and whatever of pgward's list is installed, e.g.
# openssl, a PostgreSQL server) with a few Debian has that are not installed here
mix=(dpkg)
for p in openssl postgresql-15 pgbouncer linux-perf "${pkgs[@]:0:4}"; do
	is_installed "$p" && mix+=("$p")
done
extra=()
for p in cowsay sl fortune-mod figlet; do
	if ! is_installed "$p" && apt-cache show "$p" >/dev/null 2>&1; then
		extra+=("$p")
	fi
	[[ ${#extra[@]} -lt 2 ]] || break
done
if [[ ${#extra[@]} -eq 0 ]]; then
	for n in "dry run succeeds" "missing = only the packages not installed" "nothing installed would be added" \
		"install command safe" "upgrades refused by default"; do
		check_skip "mixed list: $n" "none of cowsay, sl, fortune-mod, figlet is both known to apt and not installed"
	done
else
	check "mixed list (${mix[*]} installed; ${extra[*]} not): dry run succeeds" \
		bash -c 'DEPS_PACKAGES="$2" scripts/deps.sh --dry-run >"$1" 2>"$1.err"' _ "$T/mix" "${mix[*]} ${extra[*]}"
	check "mixed list: missing = exactly ${extra[*]}" missing_is_exact "$T/mix" "${mix[@]}" "${extra[@]}"
	check "mixed list: nothing installed would be added" nothing_installed_in new "$T/mix"
	check "mixed list: the install command has --no-upgrade and no upgrade" command_is_safe "$T/mix"
	check "mixed list: an upgrade a missing package needs is named in the plan" upgrades_named "$T/mix"
fi
check "a dry run changed nothing (dpkg status, enabled units, policy-rc.d)" \
	bash -c '[[ "$1" == "$2" ]]' _ "$before" "$(machine_state)"

# 3. a list where everything is installed: nothing to do, apt never run
check "all installed: --dry-run says nothing to do" \
	bash -c 'DEPS_PACKAGES="dpkg" scripts/deps.sh --dry-run | grep -qx "verdict: nothing to do"'
# apt-get, apt-cache and sudo that fail loudly if called
mkdir -p "$T/bin"
for c in apt-get apt-cache sudo systemctl; do
	printf '#!/bin/sh\necho "%s called: $*" >>"%s/called"\nexit 99\n' "$c" "$T" >"$T/bin/$c"
	chmod +x "$T/bin/$c"
done
check "all installed: deps.sh and --if-missing run no apt-get, sudo or systemctl" \
	bash -c 'DEPS_PACKAGES="dpkg" PATH="$1/bin:$PATH" scripts/deps.sh --if-missing &&
		DEPS_PACKAGES="dpkg" PATH="$1/bin:$PATH" scripts/deps.sh && ! cat "$1/called" 2>/dev/null | grep . >&2' _ "$T"

# 4. what the install does to services, with stand-ins for dpkg -L and systemctl (nothing on
# the machine is touched): the units of newly installed packages are disabled (and stopped when
# systemd runs) unless they existed before; a unit enabled before is left alone; templates
# and files that are not units are ignored.
tame_case() { # SYSTEMD_UP
	local case_dir=$T/tame$1
	mkdir -p "$case_dir/bin" "$case_dir/run"
	cat >"$case_dir/bin/dpkg" <<-'SH'
		#!/bin/sh
		[ "$1" = -L ] || exit 1
		case $2 in
		pgw-fake-pooler) printf '%s\n' /lib/systemd/system/pgw-fake-pooler.service /etc/init.d/pgw-fake-pooler \
			/usr/sbin/pgw-fake-pooler /lib/systemd/system/pgw-fake-pooler@.service ;;
		pgw-fake-server) printf '%s\n' /lib/systemd/system/pgw-fake-server.service /lib/systemd/system/pgw-fake-server.timer ;;
		pgw-fake-old) printf '%s\n' /lib/systemd/system/pgw-fake-old.service /lib/systemd/system/pgw-fake-old2.service ;;
		esac
	SH
	printf '#!/bin/sh\necho "systemctl $*" >>"%s/calls"\n' "$case_dir" >"$case_dir/bin/systemctl"
	chmod +x "$case_dir/bin/dpkg" "$case_dir/bin/systemctl"
	[[ $1 -eq 1 ]] || rmdir "$case_dir/run"
	(
		PATH=$case_dir/bin:$PATH
		# shellcheck source=scripts/deps.sh
		source scripts/deps.sh
		SYSTEMD_RUNTIME=$case_dir/run
		before=$'pgw-fake-old.service enabled\npgw-fake-old2.service disabled\nssh.service enabled'
		tame_new_services "$before" pgw-fake-pooler pgw-fake-server pgw-fake-old 2>"$case_dir/log"
	)
	touch "$case_dir/calls"
	local want
	want="systemctl disable --quiet pgw-fake-pooler.service"
	[[ $1 -eq 1 ]] && want+=$'\nsystemctl stop pgw-fake-pooler.service'
	want+=$'\nsystemctl disable --quiet pgw-fake-server.service'
	[[ $1 -eq 1 ]] && want+=$'\nsystemctl stop pgw-fake-server.service'
	want+=$'\nsystemctl disable --quiet pgw-fake-server.timer'
	[[ $1 -eq 1 ]] && want+=$'\nsystemctl stop pgw-fake-server.timer'
	want+=$'\nsystemctl disable --quiet pgw-fake-old2.service'
	if [[ $(cat "$case_dir/calls") != "$want" ]]; then
		printf 'systemctl calls:\n%s\nexpected:\n%s\n' "$(cat "$case_dir/calls")" "$want" >&2
		return 1
	fi
}
check "services of new packages disabled and stopped (systemd running); one enabled before left alone; one disabled before disabled again, not stopped; templates ignored" \
	tame_case 1
check "the same without a running systemd: disabled, nothing stopped through systemctl" tame_case 0

finish
