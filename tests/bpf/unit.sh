#!/usr/bin/env bash
# The systemd unit under a real systemd, as root: a Debian 12 root filesystem (debootstrap
# minbase + systemd, dbus, psql, python3 and the package's Depends; cached as
# $BUILD/unit/base-<key>.tar) gets the pgward .deb with dpkg -i and is booted with
# `systemd-nspawn -b` (the host's network, /sys/fs/bpf bound in). Inside it, the INSTALLED
# pgwardd.service with its whole sandbox (ProtectSystem=strict and its directories,
# ReadWritePaths=/sys/fs/bpf, ReadOnlyPaths, PrivateTmp, PrivateMounts, RestrictNamespaces,
# SystemCallFilter, SecureBits=noroot-locked with ambient capabilities...) runs the installed
# example configuration (its ports pointed at a throwaway PostgreSQL on the host's loopback, a
# pin path of its own): `systemctl start` returns with the unit active (Type=notify, READY=1),
# the sandbox is in force on the process, its pins are made; an agent in pgward.slice
# (`systemd-run --slice=pgward.slice`) is steered, masked and refused a DROP by the example
# policy; `systemctl reload` (SIGHUP) re-reads the file, a bad file is refused; `systemctl
# stop` keeps the pins and the agent is refused (fail-closed); `systemctl start` takes the
# pins over; `systemctl restart` with an agent dialling all through it lets nothing reach
# PostgreSQL directly. `systemd-analyze security` rates the running unit.
#
# nspawn here: its own seccomp filter refuses bpf(2) and open_by_handle_at(2) unless allowed
# (--system-call-filter); the container runs in a PID namespace of its own, so pgwardd there
# cannot see the kernel's pids of its callers (exe and ancestry show "?"; the example
# identity matches on the cgroup only). On a hybrid cgroup host the container's systemd runs
# hybrid too (cgroup v2 at /sys/fs/cgroup/unified), as the host does.
#
# Standalone: BUILD=build-u bash tests/bpf/unit.sh   (DEB=path tests another package)
# Environment: UNIT_MIRROR (default: deb.debian.org), UNIT_REFRESH=1 rebuilds the base.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
PY=/usr/bin/python3
# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=../integration/lib.sh
source "$top/tests/integration/lib.sh"
unset PGOPTIONS PGSERVICE PGWARD_CONTROL_SOCKET

if [[ $EUID -ne 0 ]]; then
	echo "1..0 # SKIP not root (boots a container, loads eBPF programs)"
	exit 0
fi
bail() {
	echo "not ok - $*"
	finish
	exit 1
}
for t in systemd-nspawn debootstrap nsenter chroot unshare dpkg-deb; do
	command -v "$t" >/dev/null || bail "$t not found (systemd-container, debootstrap, util-linux)"
done

SUITE=bookworm
MIRROR=${UNIT_MIRROR:-http://deb.debian.org/debian}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
NAME=pgward-unit-$$
PIN=/sys/fs/bpf/$NAME
CG2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
# the named systemd v1 hierarchy of a hybrid host, where nspawn puts its container too
CG1=$(awk '$3 == "cgroup" && $4 ~ /(^|,)name=systemd(,|$)/ {print $2; exit}' /proc/mounts)
CGS=("$CG2/$NAME")
[[ -n $CG1 ]] && CGS+=("$CG1/$NAME")
W=$(mktemp -d /tmp/pgward-unit.XXXXXX)
R=$W/root
NSPAWN=
P1=

cleanup() {
	local i d
	if [[ -n $NSPAWN ]] && kill -0 "$NSPAWN" 2>/dev/null; then
		kill -TERM "$NSPAWN" # nspawn asks the container's systemd to power off
		for ((i = 0; i < 300; i++)); do
			kill -0 "$NSPAWN" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$NSPAWN" 2>/dev/null
	fi
	[[ -n $NSPAWN ]] && wait "$NSPAWN" 2>/dev/null
	for d in "${CGS[@]}"; do
		[[ -d $d ]] || continue
		[[ -f $d/cgroup.kill ]] && echo 1 >"$d/cgroup.kill" 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
			[[ -d $d ]] || break
			sleep 0.1
		done
	done
	rm -rf "$PIN" # unpinning the links detaches the programs
	rm -rf "/run/systemd/nspawn/propagate/$NAME"
	pgtmp_stop_all >/dev/null 2>&1
	if [[ -d $W && $W == /tmp/pgward-unit.* ]]; then
		rm -rf --one-file-system -- "$W"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the package and the root filesystem ----------------------------------------------------
if [[ -n ${DEB:-} ]]; then
	DEB=$(readlink -f -- "$DEB")
else
	DEB=$(BUILD=$BUILD "$top/scripts/deb.sh" 2>"$W/deb.err") || {
		cat "$W/deb.err" >&2
		bail "make deb"
	}
fi
[[ -f $DEB && $(dpkg-deb -f "$DEB" Package) == pgward ]] || bail "$DEB is no pgward package"
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g' | grep -v '^$')
# shellcheck disable=SC2086 # one package a word
mapfile -t PKGS < <(printf '%s\n' $deps systemd systemd-sysv dbus postgresql-client python3 | sort -u)
KEY=$(printf '%s\n' 1 "$SUITE" "$MIRROR" "$(dpkg --print-architecture)" "${PKGS[@]}" | sha256sum | cut -c1-16)
CACHE=$BUILD/unit
BASE=$CACHE/base-$KEY.tar
make_base() {
	local b=$W/base
	debootstrap --variant=minbase --keyring="$KEYRING" --components=main \
		--include="$(IFS=,; echo "${PKGS[*]}")" "$SUITE" "$b" "$MIRROR" >"$W/debootstrap.log" 2>&1 || {
		tail -n 20 "$W/debootstrap.log" >&2
		return 1
	}
	mkdir -p "$CACHE"
	rm -f "$CACHE"/base-*.tar
	tar -C "$b" --numeric-owner --xattrs --acls -cf "$BASE.tmp" . && mv "$BASE.tmp" "$BASE"
	rm -rf --one-file-system -- "$b"
}
if [[ ! -f $BASE || ${UNIT_REFRESH:-0} == 1 ]]; then
	echo "# debootstrap $SUITE minbase + ${PKGS[*]} (cached as $BASE)"
	make_base || bail "debootstrap of the container's root filesystem"
fi
in_root() { # CMD... chrooted into $R with /proc, no service started
	# shellcheck disable=SC2016 # expanded by that sh
	unshare --mount --propagation private -- sh -c 'root=$1; shift
		mount -t proc proc "$root/proc" && exec chroot "$root" /usr/bin/env -i \
			PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C DEBIAN_FRONTEND=noninteractive "$@"' sh "$R" "$@"
}
install_deb() {
	mkdir "$R" && tar -C "$R" --numeric-owner --xattrs --acls -xf "$BASE" || return 1
	printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
	chmod 755 "$R/usr/sbin/policy-rc.d"
	cp "$DEB" "$R/root/pgward.deb"
	in_root dpkg -i /root/pgward.deb >"$W/dpkg.log" 2>&1 || {
		tail -n 20 "$W/dpkg.log" >&2
		return 1
	}
	rm -f "$R/usr/sbin/policy-rc.d" "$R/root/pgward.deb" "$R/etc/hostname"
	# the container's machine id: nspawn's, not one baked in the cached base
	: >"$R/etc/machine-id"
	[[ -f $R/usr/lib/systemd/system/pgwardd.service && -f $R/etc/pgward/upstream.pw ]]
}
check "the .deb installs (dpkg -i) into a debootstrap'd Debian 12 root with systemd" install_deb ||
	bail "no root filesystem to boot"
UNIT=$R/usr/lib/systemd/system/pgwardd.service

# ---- a throwaway PostgreSQL on the host; the installed config pointed at it -------------------
PGTMP_QUIET=1 PGTMP_CONF="log_connections = on" pgtmp_start unit >/dev/null ||
	bail "the throwaway cluster did not start"
pgtmp_psql -q -v ON_ERROR_STOP=1 -v pw="$(cat "$R/etc/pgward/upstream.pw")" >/dev/null <<-'SQL'
	CREATE ROLE pgward_login LOGIN PASSWORD :'pw';
	CREATE ROLE agent LOGIN PASSWORD 'agent-direct';
	CREATE TABLE customers (id int PRIMARY KEY, name text, email text, ssn text);
	INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', '123-45-6789');
	CREATE TABLE orders (id int PRIMARY KEY, amount numeric);
	INSERT INTO orders SELECT i, i FROM generate_series(1, 5) i;
	ALTER TABLE customers OWNER TO pgward_login;
	ALTER TABLE orders OWNER TO pgward_login;
SQL
# an administrator's edit of the example: the cluster's port, a pin path of this test's, and
# free ports for the listeners (the host's network is shared with other tests): the steered
# one below 1024, as the default 432 is (the unit's CAP_NET_BIND_SERVICE)
ports=$($PY - "$R/etc/pgward/pgward.json" "$PGTMP_PORT" "$PIN" <<-'PY'
	import json, socket, sys
	path, port, pin = sys.argv[1], int(sys.argv[2]), sys.argv[3]
	def v6():
	    try:
	        s = socket.socket(socket.AF_INET6); s.bind(("::1", 0)); s.close(); return True
	    except OSError:
	        return False
	def free(cands, six):
	    for p in cands:
	        socks = []
	        try:
	            for fam, host in [(socket.AF_INET, "127.0.0.1")] + ([(socket.AF_INET6, "::1")] if six else []):
	                s = socket.socket(fam); socks.append(s); s.bind((host, p))
	            return socks[0].getsockname()[1]
	        except OSError:
	            continue
	        finally:
	            for s in socks: s.close()
	    raise SystemExit("no free port")
	six = v6()
	c = json.load(open(path))
	c["upstreams"]["main"]["port"] = port
	r = c["redirect"]
	r["ports"] = [port]
	r["pin_path"] = pin
	r["listen4_port"] = free(range(1000, 399, -1), six)
	if not six:
	    r["listen6"] = ""
	c["listen"][0]["port"] = free([0], False)
	json.dump(c, open(path, "w"), indent=2)
	print(r["listen4_port"], c["listen"][0]["port"])
PY
) || bail "editing the installed configuration"
echo "# steered listener port $ports (listen port second); pin path $PIN"

# ---- boot ------------------------------------------------------------------------------------
boot() {
	local d i
	for d in "${CGS[@]}"; do mkdir -p "$d" || return 1; done
	# nspawn (not registered with machined: no systemd runs on the host) makes its payload and
	# supervisor cgroups below its own: this test's
	(
		for d in "${CGS[@]}"; do echo "$BASHPID" >"$d/cgroup.procs" || exit 1; done
		exec systemd-nspawn -q -b -D "$R" -M "$NAME" --register=no --keep-unit \
			--console=read-only --bind=/sys/fs/bpf --capability=all \
			--system-call-filter='bpf open_by_handle_at'
	) >"$W/console.log" 2>&1 &
	NSPAWN=$!
	for ((i = 0; i < 300; i++)); do
		P1=$(pgrep -P "$NSPAWN" -x systemd | head -1)
		[[ -n $P1 ]] && break
		kill -0 "$NSPAWN" 2>/dev/null || break
		sleep 0.1
	done
	[[ -n $P1 ]] || {
		tail -n 20 "$W/console.log" >&2
		return 1
	}
	local state=
	# until its manager answers on its private socket, then until the boot is done
	for ((i = 0; i < 600; i++)); do
		state=$(timeout 60 nsenter -t "$P1" -a -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
			systemctl is-system-running --wait 2>&1)
		[[ $state == *"Failed to connect"* ]] || break
		kill -0 "$NSPAWN" 2>/dev/null || break
		sleep 0.1
	done
	echo "$state" >"$W/state"
	[[ $state == running || $state == degraded ]] || {
		tail -n 20 "$W/console.log" >&2
		return 1
	}
}
check "systemd-nspawn -b boots the root with systemd as its PID 1 (host network, /sys/fs/bpf bound)" boot
[[ -n $P1 && -s $W/state ]] || bail "no container"
cgmode=$(nsenter -t "$P1" -a -- stat -fc %T /sys/fs/cgroup 2>/dev/null)
case $cgmode in
cgroup2fs) cgmode="unified" ;;
tmpfs) cgmode="hybrid (cgroup2 at $(nsenter -t "$P1" -a -- findmnt -nro TARGET -t cgroup2 | head -1))" ;;
esac
echo "# the container's systemd: $(cat "$W/state"); its cgroup hierarchy: $cgmode"

ct() { # CMD... in the container (all its namespaces), a clean environment
	nsenter -t "$P1" -a -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"
}
prop() { ct systemctl show -P "$1" pgwardd; }
journal() { ct journalctl -u pgwardd --no-pager -o cat >&2; }

# ---- systemctl start --------------------------------------------------------------------------
started() {
	ct systemctl start pgwardd || {
		ct journalctl -u pgwardd --no-pager -o cat -n 15 >&2
		return 1
	}
	local st
	# no wait: a Type=notify start returns once READY=1 came
	st=$(ct systemctl show -p ActiveState,SubState,MainPID,StatusText pgwardd)
	echo "$st" >&2
	[[ $st == *ActiveState=active* && $st == *SubState=running* &&
		$st == *"StatusText=serving"* && $st != *MainPID=0* ]]
}
check "systemctl start pgwardd returns with the unit active (Type=notify READY=1, StatusText serving)" started
MAINPID=$(prop MainPID)
HPID=$(while read -r p; do
	[[ $(awk '/^NSpid/ {print $NF}' "/proc/$p/status" 2>/dev/null) == "$MAINPID" ]] && echo "$p"
done <"$(find "${CGS[0]}" -path '*/pgwardd.service/cgroup.procs' | head -1)")
echo "# MainPID $MAINPID in the container, $HPID on the host"
mainpid_exe() { [[ -n $HPID && $(ct readlink "/proc/$MAINPID/exe") == /usr/sbin/pgwardd ]]; }
check "MainPID is /usr/sbin/pgwardd" mainpid_exe

# the sandbox, as the kernel shows it on the running process
mask=0
read -ra bset < <(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
for c in "${bset[@]}"; do
	n=$(awk -v c="$c" '$1 == "#define" && $2 == c {print $3; exit}' /usr/include/linux/capability.h)
	mask=$((mask | (1 << n)))
done
caps_exact() {
	local f
	for f in CapEff CapBnd CapAmb; do
		v=$(awk -v f="$f:" '$1 == f {print $2}' "/proc/$HPID/status")
		[[ $((16#$v)) == "$mask" ]] || {
			echo "$f $v, the unit's set is $(printf %x "$mask")" >&2
			return 1
		}
	done
	if ! grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$HPID/status" ||
		! grep -q '^Seccomp:[[:space:]]*2' "/proc/$HPID/status" ||
		[[ $(awk '/^Uid/ {print $2}' "/proc/$HPID/status") != 0 ]]; then
		grep -E 'NoNewPrivs|Seccomp|Uid' "/proc/$HPID/status" >&2
		return 1
	fi
}
check "the running pgwardd: uid 0 with exactly the unit's capabilities (effective, bounding, ambient), NoNewPrivs, a seccomp filter" caps_exact
mounts_ok() { # the mount options of the paths pgwardd sees, from its mountinfo
	$PY - "/proc/$HPID/mountinfo" <<-'PY'
		import sys
		m = {}
		for line in open(sys.argv[1]):
		    f = line.split()
		    sep = f.index("-")
		    m[f[4].replace("\\040", " ")] = (f[5].split(","), f[sep + 1])
		def mount_of(path):
		    best = max((p for p in m if path == p or path.startswith(p.rstrip("/") + "/")), key=len)
		    return best, m[best]
		want = {"/usr": "ro", "/etc": "ro", "/sys": "ro", "/proc/sys": "ro", "/sys/fs/cgroup": "ro",
		        "/sys/fs/bpf": "rw", "/var/lib/pgward": "rw", "/var/log/pgward": "rw",
		        "/run/pgward": "rw", "/tmp": "rw", "/root": "ro"}
		bad = []
		for p, w in want.items():
		    mp, (opts, fstype) = mount_of(p)
		    if w not in opts:
		        bad.append("%s: mount %s %s %s, want %s" % (p, mp, fstype, ",".join(opts), w))
		mp, (opts, fstype) = mount_of("/sys/fs/bpf")
		if fstype != "bpf":
		    bad.append("/sys/fs/bpf is %s" % fstype)
		mp, (opts, fstype) = mount_of("/tmp")
		if mp != "/tmp":
		    bad.append("/tmp is not a mount of its own (PrivateTmp)")
		for b in bad:
		    print(b, file=sys.stderr)
		sys.exit(1 if bad else 0)
	PY
}
check "its mounts: /usr /etc /sys /proc/sys /sys/fs/cgroup read-only, bpffs and its State/Logs/Runtime directories writable, a private /tmp" mounts_ok
own_mntns() {
	local m
	m=$(readlink "/proc/$HPID/ns/mnt") && [[ -n $HPID && $m != $(readlink "/proc/$P1/ns/mnt") ]]
}
check "it runs in a mount namespace of its own (PrivateMounts)" own_mntns
pins_made() { [[ -d $PIN/links && -n $(ls "$PIN/links" 2>/dev/null) ]]; }
check "its eBPF links are pinned at the configuration's pin path on the host's bpffs" pins_made

# ---- an agent in pgward.slice ------------------------------------------------------------------
DIRECT="host=127.0.0.1 port=$PGTMP_PORT user=agent dbname=postgres"
agent() { # CMD...: as a transient service in pgward.slice, its output piped back
	ct systemd-run --quiet --wait --pipe --slice=pgward.slice -E PGPASSWORD=agent-direct "$@"
}
steered_masked() {
	local out
	out=$(agent psql -X -At "$DIRECT" -c 'SELECT current_user, email, ssn FROM customers' 2>&1)
	echo "$out" >&2
	[[ $out == pgward_login\|*\|*6789 && $out != *ada@example.com* && $out != *123-45* ]]
}
check "an agent in pgward.slice (systemd-run --slice) dialling the host's PostgreSQL is steered (runs as pgward_login), PII masked" steered_masked
drop_denied() {
	local out
	out=$(agent psql -X "$DIRECT" -c 'DROP TABLE orders' 2>&1)
	echo "$out" >&2
	[[ $out == *"ERROR:  pgward: identity agent"* ]] &&
		[[ $(pgtmp_psql -Atc "SELECT count(*) FROM orders") == 5 ]]
}
check "its DROP TABLE orders is refused by pgwardd (identity agent's policy), and orders is intact" drop_denied
outside_direct() { # a process outside the slice is not steered
	ct systemd-run --quiet --wait --pipe -E PGPASSWORD=agent-direct \
		psql -X -At "$DIRECT" -c 'SELECT current_user' 2>&1 | grep -qx agent
}
check "a process outside pgward.slice reaches PostgreSQL as dialled" outside_direct
audit_ok() {
	grep -q '"identity":"agent"' "$R/var/log/pgward/audit.jsonl" &&
		ct pgwardctl audit verify /var/log/pgward/audit.jsonl >&2
}
check "the audit trail in /var/log/pgward (LogsDirectory) records the agent and verifies" audit_ok
ctl_ok() { ct pgwardctl -j stats >/dev/null && ct pgwardctl -j prog show | grep -q connect4; }
check "pgwardctl over /run/pgward/control.sock (RuntimeDirectory)" ctl_ok

# ---- reload ------------------------------------------------------------------------------------
reloaded() {
	local st
	ct systemctl reload pgwardd || return 1
	st=$(prop StatusText)
	if [[ $st != serving || $(prop ActiveState) != active || $(prop MainPID) != "$MAINPID" ]] ||
		! ct journalctl -u pgwardd --no-pager -o cat | grep -q 'configuration reloaded from /etc/pgward/pgward.json'; then
		echo "StatusText '$st'" >&2
		journal
		return 1
	fi
}
check "systemctl reload (SIGHUP): the file is read again, READY=1 with StatusText serving, same MainPID" reloaded
bad_reload() {
	cp "$R/etc/pgward/pgward.json" "$W/good.json"
	echo '{"listen": ' >"$R/etc/pgward/pgward.json"
	ct systemctl reload pgwardd
	local st
	st=$(prop StatusText)
	cp "$W/good.json" "$R/etc/pgward/pgward.json"
	echo "StatusText '$st'" >&2
	[[ $st == *"last reload failed"* && $(prop ActiveState) == active && $(prop MainPID) == "$MAINPID" ]] &&
		[[ $(agent psql -X -At "$DIRECT" -c 'SELECT current_user' 2>&1) == pgward_login ]]
}
check "a reload of a broken file is refused: the unit stays active on the old configuration" bad_reload

# ---- stop: the pins kept, agents refused; start: taken over --------------------------------------
stopped() {
	[[ $(prop ActiveState) == active ]] || return 1
	ct systemctl stop pgwardd || return 1
	[[ $(prop ActiveState) == inactive ]] || return 1
	[[ $(prop Result) == success ]] || {
		journal
		return 1
	}
}
check "systemctl stop: pgwardd exits cleanly (inactive, Result=success)" stopped
check "the pins are kept after the stop" pins_made
refused() {
	local out
	out=$(agent psql -X -At "$DIRECT" -c 'SELECT current_user' 2>&1)
	echo "$out" >&2
	[[ $out == *"Connection refused"* ]]
}
check "with pgwardd stopped an agent's connect is refused (fail-closed), never let through" refused
taken_over() {
	if ! ct systemctl start pgwardd || [[ $(prop ActiveState) != active ]] ||
		! ct journalctl -u pgwardd --no-pager -o cat | grep -q 'took over the pinned maps' ||
		[[ $(agent psql -X -At "$DIRECT" -c 'SELECT current_user' 2>&1) != pgward_login ]]; then
		journal
		return 1
	fi
}
check "systemctl start takes the pins over; the agent is served again" taken_over

# ---- restart with an agent dialling all through it ----------------------------------------------
mkdir -p "$R/root/agent"
cp "$here/agent_loop.py" "$R/root/agent/"
ct systemd-run --quiet --unit=pgward-test-agent --slice=pgward.slice \
	python3 /root/agent/agent_loop.py 127.0.0.1 "$PGTMP_PORT" /root/agent/stop /root/agent/out.json
sleep 1
restarted() {
	local old
	old=$(prop MainPID)
	ct systemctl restart pgwardd && [[ $(prop ActiveState) == active && $(prop MainPID) != "$old" ]]
}
check "systemctl restart: a new pgwardd, active" restarted
sleep 1
touch "$R/root/agent/stop"
for ((i = 0; i < 100; i++)); do
	[[ -f $R/root/agent/out.json ]] && break
	sleep 0.1
done
no_slip() { $PY "$here/agent_loop.py" --judge "$R/root/agent/out.json" "$PGTMP_LOG" 1; }
no_slip_out=$(no_slip 2>&1)
rc=$?
echo "$no_slip_out" | grep '^#'
[[ $rc -eq 0 ]] || echo "$no_slip_out" | grep -v '^#' | sed 's/^/#   /'
check "through the restart the agent is served before and after; no connect reached PostgreSQL directly" test $rc -eq 0

# ---- systemd-analyze security ------------------------------------------------------------------
security() {
	local out score
	out=$(ct systemd-analyze security --no-pager pgwardd 2>&1)
	score=$(sed -n 's/.*Overall exposure level for pgwardd.service: \([0-9.]*\).*/\1/p' <<<"$out")
	echo "# systemd-analyze security pgwardd (running): ${score:-?} $(grep -o 'Overall exposure.*' <<<"$out" | sed 's/.*: [0-9.]* //')"
	[[ -n $score ]] && $PY -c "import sys; sys.exit(0 if float('$score') <= 3.6 else 1)"
}
sec_running() {
	[[ $(prop ActiveState) == active ]] || {
		echo "# pgwardd is not running"
		return 1
	}
	security
}
sec_out=$(sec_running 2>&1)
rc=$?
echo "$sec_out" | grep '^#'
check "systemd-analyze security rates the running unit's exposure 3.6 or better (its level when this test was written)" test $rc -eq 0
journal_clean() { # nothing the sandbox refused, as systemd or pgwardd logged it
	! ct journalctl -u pgwardd --no-pager -o cat |
		grep -iE 'Failed at step|Operation not permitted|Permission denied|Read-only file system|status=(31|203|226)/' >&2
}
check "pgwardd's journal holds no refusal by the sandbox (EPERM, EACCES, EROFS, a failed spawn step)" journal_clean
finish
