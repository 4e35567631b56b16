#!/usr/bin/env bash
# The Debian package on this machine, for real, as root: `make deb`, dpkg -i (its Depends met
# by Debian's packages), the installed tree and host setup (group, secrets, modes), the
# installed unit verified, then the INSTALLED pgwardd started with the INSTALLED example
# configuration (only its ports pointed at a throwaway PostgreSQL) under exactly the unit's
# capability bounding set and NoNewPrivileges, speaking sd_notify to a listener as systemd
# would, its every system call traced: an agent in pgward.slice dialling PostgreSQL's own
# address is steered, masked and refused by the example policy; pgwardctl works over the
# default socket for root and for a member of the group pgward only; a restart keeps the pins,
# and an agent dialling all through it never reaches PostgreSQL directly (its ports are
# absent from the server's log_connections); the traced calls are all in the unit's
# SystemCallFilter. Then dpkg --purge: nothing is left (files, pins, attached programs,
# the group, pgwardd's roles in the database).
#
# Standalone: BUILD=build-u bash tests/bpf/deb.sh
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
	echo "1..0 # SKIP not root (installs a package and loads eBPF programs)"
	exit 0
fi
MARK=/var/lib/pgward/.installed-by-pgward-test
if dpkg -s pgward >/dev/null 2>&1; then
	if [[ -e $MARK ]]; then
		dpkg --purge pgward >/dev/null 2>&1 # a run of this test that was killed
	else
		echo "not ok - a pgward package is installed on this machine (not by this test): not touching it"
		echo "1..1"
		exit 1
	fi
fi
PINP=/sys/fs/bpf/pgward-deb-test # a pin path of the configuration's, not the default
for p in /etc/pgward /var/lib/pgward /var/log/pgward /sys/fs/bpf/pgward "$PINP"; do
	if [[ -e $p ]]; then
		echo "not ok - $p exists before the package is installed: not touching it"
		echo "1..1"
		exit 1
	fi
done

CGROOT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
SLICE=$CGROOT/pgward.slice
AGENT_CG=$SLICE/agent-test.scope
W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-deb.XXXXXX")
chmod 755 "$W"
PGW_PID=
TRACER=
BGPIDS=()
made_slice=

cleanup() {
	local p
	for p in "${BGPIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [[ -n $PGW_PID ]]; then
		kill -TERM "$PGW_PID" 2>/dev/null
		wait "$TRACER" 2>/dev/null
	fi
	if dpkg -s pgward >/dev/null 2>&1; then
		dpkg --purge pgward >/dev/null 2>&1
	fi
	rm -rf /sys/fs/bpf/pgward "$PINP"
	for d in "$AGENT_CG" "$SLICE"; do
		[[ -d $d ]] || continue
		while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$d/cgroup.procs"
	done
	rmdir "$AGENT_CG" 2>/dev/null
	[[ -n $made_slice ]] && rmdir "$SLICE" 2>/dev/null
	pgtmp_stop_all >/dev/null 2>&1
	rm -rf "$W"
}
trap cleanup EXIT

# ---- build and install --------------------------------------------------------------------
DEB=$(BUILD=$BUILD "$top/scripts/deb.sh" 2>"$W/deb.err")
check "make deb builds the package" test -f "$DEB"
deb_fields() {
	local dep
	dep=$(dpkg-deb -f "$DEB" Depends)
	for p in libbpf1 libssl3 libjansson4 libjwt0 libpg-query zlib1g libc6; do
		[[ $dep == *"$p"* ]] || {
			echo "Depends lacks $p: $dep" >&2
			return 1
		}
	done
	[[ $(dpkg-deb -f "$DEB" Package) == pgward ]] && dpkg-deb -I "$DEB" conffiles | grep -qx /etc/pgward/pgward.json
}
check "the package declares its Debian library dependencies and its conffile" deb_fields
no_secrets_in_deb() { ! dpkg-deb -c "$DEB" | grep -E 'mask\.key|upstream\.pw'; }
check "no secret is shipped in the package" no_secrets_in_deb
DEBIAN_FRONTEND=noninteractive dpkg -i "$DEB" >"$W/dpkg-i.out" 2>&1
check "dpkg -i installs it (its Depends met)" test $? -eq 0
touch "$MARK"
installed_tree() {
	local f
	for f in /usr/sbin/pgwardd /usr/bin/pgwardctl /usr/lib/systemd/system/pgwardd.service \
		/usr/lib/systemd/system/pgward.slice /usr/share/man/man8/pgwardd.8.gz \
		/usr/share/man/man5/pgward.json.5.gz /usr/share/man/man8/pgwardctl.8.gz \
		/usr/share/bash-completion/completions/pgwardctl /etc/pgward/pgward.json; do
		[[ -f $f ]] || {
			echo "missing $f" >&2
			return 1
		}
	done
	[[ $(stat -c %a /etc/pgward) == 700 && $(stat -c %a /etc/pgward/pgward.json) == 600 &&
		$(stat -c %a /etc/pgward/mask.key) == 600 && $(stat -c %s /etc/pgward/mask.key) == 32 &&
		$(stat -c %a /etc/pgward/upstream.pw) == 600 && $(stat -c %a /var/log/pgward) == 700 &&
		$(stat -c %a /var/lib/pgward/recordings) == 700 ]] || {
		stat -c '%a %s %n' /etc/pgward /etc/pgward/* /var/log/pgward /var/lib/pgward/recordings >&2
		return 1
	}
	grep -qE '^[0-9a-f]{48}$' /etc/pgward/upstream.pw && getent group pgward >/dev/null
}
check "installed: binaries, unit, man pages, completion; /etc/pgward 0700 with a random mask.key and upstream password (0600); group pgward" installed_tree
man_works() { man -P cat pgwardd 2>/dev/null | grep -q -- '--keep-pinned' && man -w pgward.json >/dev/null; }
check "man pgwardd and man pgward.json find the installed pages" man_works
verify_installed() {
	local out
	out=$(systemd-analyze verify /usr/lib/systemd/system/pgwardd.service /usr/lib/systemd/system/pgward.slice 2>&1) &&
		[[ -z $out ]] || {
		echo "$out" >&2
		return 1
	}
}
check "systemd-analyze verify of the installed unit (its binary and man pages resolved): silent" verify_installed

# ---- a throwaway PostgreSQL; the installed config pointed at it ------------------------------
PGTMP_QUIET=1 PGTMP_CONF="log_connections = on" pgtmp_start debtest >/dev/null ||
	{ echo "not ok - the throwaway cluster did not start"; echo 1..1; exit 1; }
pgtmp_psql -q -v ON_ERROR_STOP=1 -v pw="$(cat /etc/pgward/upstream.pw)" >/dev/null <<-'SQL'
	CREATE ROLE pgward_login LOGIN PASSWORD :'pw';
	CREATE ROLE agent LOGIN PASSWORD 'agent-direct';
	CREATE TABLE customers (id int PRIMARY KEY, name text, email text, ssn text);
	INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', '123-45-6789');
	CREATE TABLE orders (id int PRIMARY KEY, amount numeric);
	INSERT INTO orders SELECT i, i FROM generate_series(1, 5) i;
	ALTER TABLE customers OWNER TO pgward_login;
	ALTER TABLE orders OWNER TO pgward_login;
SQL
# an administrator's edit: the ports of this cluster; the rest is the example as installed
$PY - "$PGTMP_PORT" <<-'PY'
	import json, sys
	p = "/etc/pgward/pgward.json"
	c = json.load(open(p))
	port = int(sys.argv[1])
	c["upstreams"]["main"]["port"] = port
	c["redirect"]["ports"] = [port]
	c["redirect"]["pin_path"] = "/sys/fs/bpf/pgward-deb-test"
	json.dump(c, open(p, "w"), indent=2)
PY
mkdir -p "$SLICE" && made_slice=1 # what systemd does for pgward.slice
mkdir -p "$AGENT_CG"
config_check() { pgwardctl config check /etc/pgward/pgward.json >&2; }
check "pgwardctl config check passes on the installed example (the slice's cgroup present)" config_check

# the unit's capabilities, for setpriv: its bounding set, ambient, with uid 0 granting nothing
UNIT=/usr/lib/systemd/system/pgwardd.service
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$UNIT")
capset=-all
ambset=
mask=0
for c in $caps; do
	capset+=",+$(tr 'A-Z' 'a-z' <<<"${c#CAP_}")"
	n=$(awk -v c="$c" '$1 == "#define" && $2 == c {print $3; exit}' /usr/include/linux/capability.h)
	mask=$((mask | (1 << n)))
done
for c in $(sed -n 's/^AmbientCapabilities=//p' "$UNIT"); do
	ambset+="${ambset:+,}+$(tr 'A-Z' 'a-z' <<<"${c#CAP_}")"
done
securebits=
grep -qx 'SecureBits=noroot-locked' "$UNIT" && securebits=--securebits=+noroot,+noroot_locked
NOTIFY=$W/notify.sock
$PY - "$NOTIFY" "$W/notify.log" <<-'PY' &
	import socket, sys
	s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
	s.bind(sys.argv[1])
	with open(sys.argv[2], "a", buffering=1) as f:
	    while True:
	        f.write(s.recv(4096).decode().replace("\n", " | ") + "\n")
PY
BGPIDS+=($!)
for _ in $(seq 50); do [[ -S $NOTIFY ]] && break; sleep 0.1; done

# the installed binary, as the unit runs it (caps, NoNewPrivileges, notify), traced
start_pgwardd() { # LOG: $TRACER is strace's pid, $PGW_PID pgwardd's (its MAINPID=)
	local i n0
	n0=$(grep -c 'READY=1' "$W/notify.log" 2>/dev/null)
	# the unit's NoNewPrivileges, SecureBits, capabilities, and a mount namespace of its own
	# (PrivateMounts, ProtectSystem...: the exe check must hold across it)
	NOTIFY_SOCKET=$NOTIFY strace -f -qq -o "$W/strace.$1" \
		unshare --mount --propagation slave \
		setpriv --no-new-privs $securebits --inh-caps="$capset" ${ambset:+--ambient-caps="$ambset"} \
		--bounding-set="$capset" -- \
		/usr/sbin/pgwardd --config /etc/pgward/pgward.json --keep-pinned >"$W/$1" 2>&1 &
	TRACER=$!
	for ((i = 0; i < 200; i++)); do
		if (($(grep -c 'READY=1' "$W/notify.log" 2>/dev/null) > n0)); then
			PGW_PID=$(grep -o 'MAINPID=[0-9]*' "$W/notify.log" | tail -1 | cut -d= -f2)
			[[ $(readlink "/proc/$PGW_PID/exe") == /usr/sbin/pgwardd ]] && return 0
			echo "MAINPID $PGW_PID is not /usr/sbin/pgwardd" >&2
			return 1
		fi
		kill -0 "$TRACER" 2>/dev/null || break
		sleep 0.1
	done
	cat "$W/$1" >&2
	return 1
}
stop_pgwardd() { # SIGTERM to pgwardd, as systemd sends it; its exit status through strace
	kill -TERM "$PGW_PID" 2>/dev/null
	wait "$TRACER"
	local rc=$?
	PGW_PID= TRACER=
	return $rc
}
check "the installed pgwardd starts with the installed config under the unit's capabilities and sends READY=1" start_pgwardd pgwardd1.log
caps_exact() {
	local eff
	eff=$(awk '/^CapEff/ {print $2}' "/proc/$PGW_PID/status")
	[[ $((16#$eff)) == "$mask" ]] && grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$PGW_PID/status" || {
		echo "CapEff $eff, expected $(printf %x "$mask")" >&2
		return 1
	}
}
check "its effective capabilities are exactly the unit's (ambient, noroot), NoNewPrivileges on" caps_exact
notify_ready() { grep -q 'READY=1 | MAINPID=[0-9]* | STATUS=serving' "$W/notify.log"; }
check "sd_notify: READY=1 with MAINPID and STATUS" notify_ready

IN=$W/in-agent
printf '#!/bin/sh\necho $$ > "%s/cgroup.procs" && exec "$@"\n' "$AGENT_CG" >"$IN"
chmod +x "$IN"
DIRECT="host=127.0.0.1 port=$PGTMP_PORT user=agent dbname=postgres"
steered_masked() {
	local out
	out=$(PGPASSWORD=agent-direct "$IN" psql -X -At "$DIRECT" -c 'SELECT current_user, email, ssn FROM customers' 2>&1)
	echo "$out" >&2
	[[ $out == pgward_login\|*\|*6789 && $out != *ada@example.com* && $out != *123-45* ]]
}
check "an agent in pgward.slice dialling PostgreSQL is steered (runs as pgward_login) and sees PII masked" steered_masked
exe_verified() { grep -q 'comm "psql" exe "/usr/lib/postgresql/15/bin/psql"' "$W/pgwardd1.log"; }
check "the agent's executable is verified from pgwardd's own mount namespace (exe match works)" exe_verified
drop_denied() {
	local out
	out=$(PGPASSWORD=agent-direct "$IN" psql -X "$DIRECT" -c 'DROP TABLE orders' 2>&1)
	echo "$out" >&2
	[[ $out == *ERROR* ]] && [[ $(pgtmp_psql -Atc "SELECT count(*) FROM orders") == 5 ]]
}
check "DROP TABLE orders is refused by the example policy, and orders is intact" drop_denied
audit_line() { grep -q '"identity":"agent"' /var/log/pgward/audit.jsonl && pgwardctl audit verify /var/log/pgward/audit.jsonl >&2; }
check "the audit trail in /var/log/pgward records the agent and verifies" audit_line
ctl_root() {
	pgwardctl -j stats >/dev/null && pgwardctl -j prog show >"$W/progs.json" &&
		grep -q connect4 "$W/progs.json"
}
check "pgwardctl as root over the default socket /run/pgward/control.sock" ctl_root
ctl_group() {
	# membership as the group database says it (getgrouplist): here, the primary group
	setpriv --reuid=65534 --regid="$(getent group pgward | cut -d: -f3)" --clear-groups \
		pgwardctl -j stats >/dev/null
}
check "a member of the group pgward may read (pgwardctl stats)" ctl_group
ctl_other() { ! setpriv --reuid=65534 --regid=65534 --clear-groups pgwardctl -j stats >/dev/null 2>&1; }
check "a user outside the group may not" ctl_other
reload_notify() {
	kill -HUP "$PGW_PID"
	local i
	for ((i = 0; i < 50; i++)); do
		grep -q 'RELOADING=1' "$W/notify.log" && grep -A1 'RELOADING=1' "$W/notify.log" | grep -q 'READY=1 | STATUS=serving$' && return 0
		sleep 0.1
	done
	cat "$W/notify.log" >&2
	return 1
}
check "SIGHUP (ExecReload): RELOADING=1, then READY=1 serving" reload_notify

# ---- a restart with the pins kept: an agent dialling all through it -------------------------
STOPF=$W/agent.stop
"$IN" "$PY" "$here/agent_loop.py" 127.0.0.1 "$PGTMP_PORT" "$STOPF" "$W/agent.json" &
AGENT=$!
BGPIDS+=($AGENT)
sleep 1
stop_then_notified() { stop_pgwardd && grep -q STOPPING=1 "$W/notify.log"; }
check "SIGTERM: pgwardd stops cleanly (exit 0) and says STOPPING=1" stop_then_notified
pins_kept() { [[ -n $(ls "$PINP" 2>/dev/null) ]]; }
check "the pins are kept after the stop" pins_kept
sleep 1.5 # the window: nobody serves
check "the installed pgwardd starts again and takes the pins over (READY=1)" start_pgwardd pgwardd2.log
sleep 1
touch "$STOPF"
wait "$AGENT"
no_slip() { $PY "$here/agent_loop.py" --judge "$W/agent.json" "$PGTMP_LOG" 1; }
no_slip_out=$(no_slip 2>&1)
rc=$?
echo "$no_slip_out" | grep '^#'
check "through the restart: served, then refused (fail-closed), then served again; no connect reached PostgreSQL directly" test $rc -eq 0
stop_pgwardd

# ---- the system calls pgwardd made, against the unit's filter -------------------------------
expand_filter() { # systemd's groups, expanded
	local x
	systemd-analyze syscall-filter "$1" 2>/dev/null | sed -n '/^@/,$p' | tail -n +2 |
		sed 's/^ *//; s/#.*//' | grep -v '^$' | while read -r x; do
		case $x in @*) expand_filter "$x" ;; *) echo "$x" ;; esac
	done
}
syscalls_allowed() {
	local f allowed used extra
	f=$(sed -n 's/^SystemCallFilter=//p' /usr/lib/systemd/system/pgwardd.service)
	allowed=$(for x in $f; do case $x in @*) expand_filter "$x" ;; *) echo "$x" ;; esac; done | sort -u)
	# from pgwardd's own execve on (not the calls of unshare and setpriv before it)
	used=$(for f in "$W"/strace.*; do
		awk '/execve\("\/usr\/sbin\/pgwardd"/ { on = 1; next } on' "$f"
	done | sed -n 's/^[0-9]\+ \+\([a-z0-9_]\+\)(.*/\1/p' | sort -u)
	extra=$(comm -23 <(echo "$used") <(echo "$allowed"))
	echo "# system calls pgwardd made: $(echo "$used" | wc -l); outside SystemCallFilter: ${extra:-none}"
	[[ $(echo "$used" | wc -l) -gt 20 && -z $extra ]]
}
sc_out=$(syscalls_allowed)
rc=$?
echo "$sc_out" | grep '^#'
check "every system call the traced pgwardd made is in the unit's SystemCallFilter" test $rc -eq 0

# ---- purge -------------------------------------------------------------------------------
# what `systemctl enable pgwardd` leaves (no systemd runs here to do it)
WANTS=/etc/systemd/system/multi-user.target.wants
made_wants=
[[ -d $WANTS ]] || { mkdir -p "$WANTS" && made_wants=1; }
ln -sf /usr/lib/systemd/system/pgwardd.service "$WANTS/pgwardd.service"
# and a configuration that no longer loads as a whole (its secret gone): the uninstall must
# still find the pins at the configuration's pin_path
rm -f /etc/pgward/upstream.pw
DEBIAN_FRONTEND=noninteractive dpkg --purge pgward >"$W/purge.out" 2>&1
check "dpkg --purge removes the package" test $? -eq 0
nothing_left() {
	local left=0 p
	[[ -n $made_wants ]] && rmdir "$WANTS" 2>/dev/null
	for p in /etc/pgward /var/lib/pgward /var/log/pgward /run/pgward /sys/fs/bpf/pgward "$PINP" \
		"$WANTS/pgwardd.service" \
		/usr/sbin/pgwardd /usr/bin/pgwardctl /usr/lib/pgward /usr/lib/systemd/system/pgwardd.service \
		/usr/share/man/man8/pgwardd.8.gz /usr/share/doc/pgward; do
		[[ -e $p || -L $p ]] && {
			echo "left: $p" >&2
			left=1
		}
	done
	getent group pgward >/dev/null && {
		echo "left: group pgward" >&2
		left=1
	}
	dpkg -s pgward >/dev/null 2>&1 && {
		echo "left: the package" >&2
		left=1
	}
	# the programs pgwardd showed while it ran: freed, not merely detached (other pgwardds of
	# other tests may run meanwhile, with programs of the same names)
	local id ids
	ids=$($PY -c 'import json, sys
def ids(o):
    if isinstance(o, dict):
        if isinstance(o.get("id"), int) and "tag" in o:  # a program entry
            yield o["id"]
        for v in o.values():
            yield from ids(v)
    elif isinstance(o, list):
        for v in o:
            yield from ids(v)
print(" ".join(map(str, sorted(set(ids(json.load(open(sys.argv[1]))))))))' "$W/progs.json")
	if (($(wc -w <<<"$ids") < 5)); then
		echo "the programs' ids were not recorded while pgwardd ran: '$ids'" >&2
		left=1
	fi
	for id in $ids; do
		bpftool prog show id "$id" >/dev/null 2>&1 && {
			echo "left: BPF program id $id" >&2
			left=1
		}
	done
	[[ $(pgtmp_psql -Atc "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'pgward_jit%'") == 0 ]] || {
		echo "left: just-in-time roles" >&2
		left=1
	}
	return $left
}
check "after the purge nothing is left: files, pins, attached programs, the group, roles" nothing_left
direct_again() {
	PGPASSWORD=agent-direct "$IN" psql -X -At "$DIRECT" -c 'SELECT current_user' 2>&1 | grep -qx agent
}
check "and the agent's connects go where they are dialled again (the redirect is gone)" direct_again
finish
