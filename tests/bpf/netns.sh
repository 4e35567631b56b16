#!/usr/bin/env bash
# Agents in network namespaces of their own (a Kubernetes pod without hostNetwork, `ip netns
# exec`, `unshare -n`), as root: the eBPF programs rewrite their connects to 127.0.0.1:SPORT of
# THEIR namespace, and pgwardd opens its steered listeners inside every namespace a process of
# the scope is in (user/netns_listen.c), serving them from its workers while it connects
# upstream from the host's namespace. Loopback only: the namespaces have nothing but lo.
#   - a namespace appearing after start is picked up within ~2 s; a session from it runs
#     through pgwardd (user unknown to the server, current_user the upstream login), over IPv4
#     and IPv6, with the fastpath on; the policy refuses DDL naming the rule, the table intact;
#   - when no process of the scope is in it any more its listeners are closed, pgwardd keeps no
#     socket there, and once deleted the namespace is gone;
#   - pgwardctl cgroup add: the new cgroup's namespace gets listeners at once;
#   - pgwardd stopped: a connect from a namespace is refused (its listeners died with it), never
#     reaching a decoy server inside the namespace on the dialled port;
#   - "netns_listeners": false: refused as before; a reload turning it on opens them.
#
# Standalone: BUILD=build-h7 bash tests/bpf/netns.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=../integration/lib.sh
source "$top/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"
unset PGOPTIONS PGSERVICE PGWARD_CONTROL_SOCKET

bpf_setup netns # root or a loud skip; $CG, $CGNAME, $CGROOT, $PIN
for t in ip nsenter ss; do
	command -v "$t" >/dev/null || { echo "not ok - $t is missing"; echo "1..1"; exit 1; }
done

NS=pgward-ns$$ # namespaces $NS-1, -2, -3 (ip netns: /run/netns/...)
CG2=$CGROOT/pgward-netns2-$$ # a cgroup added at run time
SLEEPERS=()
netns_cleanup() {
	local p n
	for p in "${SLEEPERS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	pw_cleanup
	for n in 1 2 3; do ip netns del "$NS-$n" 2>/dev/null; done
	if [[ -d $CG2 ]]; then
		while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$CG2/cgroup.procs"
		rmdir "$CG2" 2>/dev/null
	fi
	bpf_cleanup
}
trap netns_cleanup EXIT

PGTMP_QUIET=1 PGTMP_LISTEN='127.0.0.1,::1' pgtmp_start netns >/dev/null || { echo "not ok - cluster did not start"; echo "1..1"; exit 1; }
W=$PGTMP_DIR/pgward
mkdir -p "$W/state"
chmod 700 "$W/state"
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
DB=$PGTMP_PORT
PSQL=$PGTMP_PGBIN/psql
SOCK=$W/control.sock
LOG=$W/pgwardd.log
pgtmp_psql -q -c "CREATE TABLE pwns_t (i int); INSERT INTO pwns_t VALUES (1), (2), (3)" >/dev/null

config() { # config true|false: redirect.netns_listeners
	cat <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {"db": {"host": "127.0.0.1", "port": $DB, "user": "postgres",
                       "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}},
  "redirect": {"cgroups": ["$CG"], "ports": [$DB], "fail_mode": "closed", "fastpath": true,
               "heartbeat_timeout_seconds": 0.5, "pin_path": "$PIN",
               "overrides": "$W/state/cgroup-overrides.json",
               "listen4": "127.0.0.1", "listen4_port": $SPORT, "listen6": "::1",
               "netns_listeners": $1},
  "control": {"socket": "$SOCK", "mode": "0600"},
  "identities": [
    {"name": "pod-agent", "match": {"cgroup": "/pgward-*"}, "auth": "trust", "upstream": "db",
     "rules": [{"name": "no DDL in pods", "action": "deny", "class": ["ddl", "dcl", "truncate"]},
               {"name": "read", "action": "allow", "class": ["select", "set", "transaction"]}]}
  ]
}
EOF
}

ns_ino() { stat -L -c %i "/run/netns/$1"; }
# in_ns NS CGDIR CMD...: CMD in network namespace NS (nothing else changes) and in cgroup CGDIR
in_ns() {
	local ns=$1 cg=$2
	shift 2
	timeout 20 nsenter --net="/run/netns/$ns" bash -c 'echo $$ >"$1/cgroup.procs" || exit 97; shift; exec "$@"' _ "$cg" "$@"
}
# sleeper NS CGDIR: a process of the scope living in NS (what makes pgwardd open listeners there)
sleeper() {
	nsenter --net="/run/netns/$1" bash -c 'echo $$ >"$1/cgroup.procs" && exec sleep 300' _ "$2" &
	disown
	SLEEPERS+=($!)
	LAST_SLEEPER=$!
}
# agent NS HOST SQL [CGDIR]: psql as a user the server does not know, dialling HOST:$DB from NS
agent() {
	OUT=$(in_ns "$1" "${4:-$CG}" setpriv --reuid=1 --regid=1 --clear-groups "$PSQL" -X -At \
		"host=$2 port=$DB user=pod_agent_x dbname=postgres sslmode=disable connect_timeout=5" -c "$3" 2>&1)
}
listening() { # listening NS: pgwardd's steered listener on 127.0.0.1:$SPORT inside NS
	nsenter --net="/run/netns/$1" ss -Hltn "sport = :$SPORT" | grep -q '127.0.0.1'
}
export -f listening
export SPORT
wait_listening() { # wait_listening NS SECONDS
	local i
	for ((i = 0; i < $2 * 20; i++)); do listening "$1" && return 0; sleep 0.05; done
	return 1
}
wait_closed() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do listening "$1" || return 0; sleep 0.05; done
	return 1
}
sockets_of() { # the socket inodes pgwardd holds
	find "/proc/$1/fd" -lname 'socket:*' -printf '%l\n' 2>/dev/null | sort
}

for n in 1 2 3; do
	ip netns add "$NS-$n" && ip -n "$NS-$n" link set lo up
done
config true >"$W/on.json"
check "pgwardd starts with the redirect (netns_listeners on by default: key given true)" \
	pw_start_pgwardd "$W/on.json" "$LOG"
export PGWARD_CONTROL_SOCKET=$SOCK
SOCKS_BEFORE=$(sockets_of "$PGWARDD_PID")
check "no namespace listener before any process of the scope is in another namespace" \
	bash -c "! grep -q 'network namespace net:' '$LOG' && ! nsenter --net=/run/netns/$NS-1 ss -Hltn 'sport = :$SPORT' | grep -q ."

# --- a namespace appearing after start ------------------------------------------------------------
INO1=$(ns_ino "$NS-1")
t0=$(date +%s%N)
sleeper "$NS-1" "$CG"
S1=$LAST_SLEEPER
wait_listening "$NS-1" 5
ms=$((($(date +%s%N) - t0) / 1000000))
check "a process of the scope entering network namespace $NS-1 gets pgwardd's listener there within 2 s (${ms} ms)" \
	bash -c "listening $NS-1 && test $ms -le 2000"
check "pgwardd's log names the namespace and its listeners (info)" \
	pw_wait_log "$LOG" "network namespace net:\[$INO1\] (pid [0-9]*): listening on 127.0.0.1:$SPORT and \[::1\]:$SPORT for steered connections" 3
check "  ... and the listener really is inside $NS-1, not in the host's namespace only" \
	bash -c "nsenter --net=/run/netns/$NS-1 ss -Hltn 'sport = :$SPORT' | grep -q '127.0.0.1:$SPORT' && nsenter --net=/run/netns/$NS-1 ss -Hltn 'sport = :$SPORT' | grep -q '\[::1\]:$SPORT'"
check "the host's PostgreSQL is not reachable from $NS-1 by itself (control: nothing there but lo)" \
	bash -c "! timeout 5 nsenter --net=/run/netns/$NS-1 '$PSQL' -X -At 'host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable connect_timeout=3' -c 'SELECT 1' >/dev/null 2>&1"

# --- sessions from the namespace --------------------------------------------------------------------
fastpath() { "$CTL" -j stats 2>/dev/null | jq -r '[.. | objects | .fastpath_redirects? // empty] | first // 0'; }
FP0=$(fastpath)
agent "$NS-1" 127.0.0.1 "SELECT current_user"
check "from $NS-1, psql dialling 127.0.0.1:$DB runs a session through pgwardd: current_user is the upstream login ($OUT)" \
	test "$OUT" = postgres
check "  ... pgwardd identified the caller by the kernel's record (identity pod-agent, its cgroup)" \
	pw_wait_log "$LOG" "identity=pod-agent upstream=db caller: pid [0-9]* uid 1 .*cgroup \"/$CGNAME\"" 3
agent "$NS-1" ::1 "SELECT 6"
check "IPv6: from $NS-1, psql dialling [::1]:$DB is served too ($OUT)" test "$OUT" = 6
agent "$NS-1" 127.0.0.1 "DROP TABLE pwns_t"
check "the policy refuses DDL from the namespace, naming the identity and rule" \
	bash -c '[[ $1 == *"identity pod-agent"*"no DDL in pods"* ]] || { echo "got: $1" >&2; false; }' _ "$OUT"
check "  ... and the table is intact" test "$(pgtmp_psql -At -c 'SELECT count(*) FROM pwns_t')" = 3
OUT=$(in_ns "$NS-1" "$CG" python3 -c "
import socket, struct
s = socket.create_connection(('127.0.0.1', $SPORT), timeout=5)
s.sendall(struct.pack('!II', 8 + 13, 196608) + b'user\0postgres\0\0')
d = s.recv(4096)
print('refused' if not d or d[:1] == b'E' else d)" 2>&1)
check "a connection to that listener the kernel did not steer (no record) is refused by pgwardd ($OUT)" \
	test "$OUT" = refused
FP1=$(fastpath)
check "the fastpath (sockmap) carried the namespace's sessions ($FP0 -> $FP1 messages redirected), no error logged" \
	bash -c "test '$FP1' -gt '$FP0' && ! grep -Ei 'error|sockmap.*fail' '$LOG'"

# --- the namespace empties, then goes ----------------------------------------------------------------
kill -KILL "$S1" 2>/dev/null
check "no process of the scope in $NS-1 any more: its listeners are closed within 2 s" wait_closed "$NS-1" 2
check "  ... and logged (info)" pw_wait_log "$LOG" "network namespace net:\[$INO1\]: steered listeners closed (no process in scope is in it any more)" 2
sleep 0.3
check "pgwardd holds no socket of $NS-1 (none owned by pgwardd there; its socket count is back to the start's)" \
	bash -c "! nsenter --net=/run/netns/$NS-1 ss -Htanp | grep -q 'pid=$PGWARDD_PID,' && test \"\$(find /proc/$PGWARDD_PID/fd -lname 'socket:*' | wc -l)\" = $(wc -l <<<"$SOCKS_BEFORE")"
ip netns del "$NS-1"
check "once deleted, $NS-1 is gone: not named by ip netns, no process in net:[$INO1]" \
	bash -c "! ip netns list | grep -q '^$NS-1\b' && ! find /proc/[0-9]*/ns/net -lname 'net:\[$INO1\]' 2>/dev/null | grep -q ."

# --- pgwardctl cgroup add: the new cgroup's namespace at once --------------------------------------
mkdir -p "$CG2"
sleeper "$NS-3" "$CG2"
sleep 1.5
check "a process in a cgroup not in scope: no listener in its namespace" bash -c "! listening $NS-3"
t0=$(date +%s%N)
"$CTL" cgroup add "$CG2" >/dev/null 2>&1
wait_listening "$NS-3" 5
ms=$((($(date +%s%N) - t0) / 1000000))
check "pgwardctl cgroup add: the cgroup's namespace gets its listener at once (${ms} ms)" \
	bash -c "listening $NS-3 && test $ms -le 1500"
agent "$NS-3" 127.0.0.1 "SELECT 3" "$CG2"
check "  ... and a session from it runs through pgwardd ($OUT)" test "$OUT" = 3
"$CTL" cgroup del "$CG2" >/dev/null 2>&1
check "pgwardctl cgroup del: that namespace's listener is closed" wait_closed "$NS-3" 3

# --- pgwardd stopped: fail-closed ------------------------------------------------------------------
sleeper "$NS-2" "$CG"
check "a second namespace $NS-2 gets its listener" wait_listening "$NS-2" 3
# a decoy server inside $NS-2 on the dialled port: an unsteered connect would reach it
nsenter --net="/run/netns/$NS-2" python3 "$here/decoy_pg.py" "$DB" "decoy in the namespace" 60 &
disown
SLEEPERS+=($!)
for _ in $(seq 100); do nsenter --net="/run/netns/$NS-2" ss -Hltn "sport = :$DB" | grep -q . && break; sleep 0.05; done
OUT=$(timeout 10 nsenter --net="/run/netns/$NS-2" "$PSQL" -X -At "host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable connect_timeout=3" -c "SELECT 1" 2>&1)
check "control: outside the scope, psql in $NS-2 reaches the decoy" \
	bash -c '[[ $1 == *"decoy in the namespace"* ]] || { echo "got: $1" >&2; false; }' _ "$OUT"
kill -TERM "$PGWARDD_PID"
for _ in $(seq 100); do kill -0 "$PGWARDD_PID" 2>/dev/null || break; sleep 0.1; done
check "pgwardd stops (pins kept)" bash -c "! kill -0 $PGWARDD_PID 2>/dev/null && test -d '$PIN'"
check "  ... and its listener in $NS-2 died with it" bash -c "! listening $NS-2"
agent "$NS-2" 127.0.0.1 "SELECT 1"
check "pgwardd stopped: a connect from $NS-2 in the scope is refused (fail-closed), never reaching the decoy" \
	bash -c '[[ $1 != *"decoy"* && $1 == *"Connection refused"* ]] || { echo "got: $1" >&2; false; }' _ "$OUT"

# --- netns_listeners off: as before, refused; a reload turns it on ---------------------------------
config false >"$W/off.json"
: >"$LOG"
check "pgwardd restarts with \"netns_listeners\": false (takes the pins over)" pw_start_pgwardd "$W/off.json" "$LOG"
sleep 2
check "  ... no listener in $NS-2 (2 s after start), the log says they are off" \
	bash -c "! listening $NS-2 && grep -q 'network namespace listeners: off' '$LOG'"
agent "$NS-2" 127.0.0.1 "SELECT 1"
check "  ... a connect from $NS-2 is refused, never reaching the decoy" \
	bash -c '[[ $1 != *"decoy"* && $1 == *"Connection refused"* ]] || { echo "got: $1" >&2; false; }' _ "$OUT"
cp "$W/on.json" "$W/off.json"
kill -HUP "$PGWARDD_PID"
check "a reload with \"netns_listeners\": true opens the listener in $NS-2" wait_listening "$NS-2" 3
agent "$NS-2" 127.0.0.1 "SELECT 2"
check "  ... and the session from $NS-2 runs through pgwardd ($OUT)" test "$OUT" = 2
check "pgwardd logged no error" bash -c "! grep -E ' (error|ERROR)' '$LOG'"

finish
