#!/usr/bin/env bash
# Kernel events in the audit trail, as root: a throwaway cgroup v2 directory, a throwaway
# PostgreSQL on 127.0.0.1 standing in for the remote database, pgwardd with a "redirect" and an
# "audit" section. A steered psql must leave a redirect record with the kernel's facts (pid,
# comm, exe, cgroup, destination, ancestry) and a session_start whose kernel facts are the
# same; connects refused while pgwardd is dead (fail-closed) must reach the trail of the next
# pgwardd (the pinned ring buffer keeps them); a connection to the steered listener that the
# kernel did not steer is a tuple_miss; and the trail, across the kill, verifies.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
source "$top/scripts/pgtmp.sh"
source "$top/tests/integration/lib.sh"
source "$here/lib.sh"

bpf_setup audit

PGTMP_QUIET=1 pgtmp_start bpfaudit >/dev/null || {
	echo "not ok - cluster did not start"
	exit 1
}
W=$PGTMP_DIR/pgward
mkdir -p "$W"
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
DB=$PGTMP_PORT
CONF=$W/pgwardd.json
PSQL=$PGTMP_PGBIN/psql
TRAIL=$W/audit.jsonl
cat >"$CONF" <<EOF
{
  "workers": 2,
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {
    "db4": {"host": "127.0.0.1", "port": $DB, "user": "postgres",
            "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}
  },
  "redirect": {"cgroups": ["$CG"], "ports": [$DB], "fail_mode": "closed", "fastpath": false,
               "heartbeat_timeout_seconds": 0.3, "pin_path": "$PIN",
               "listen4": "127.0.0.1", "listen4_port": $SPORT},
  "identities": [
    {"name": "agent", "match": {"cgroup": "/$CGNAME", "exe": "/usr/lib/postgresql/*/bin/psql"},
     "auth": "trust", "rules": [{"action": "allow"}], "guardrails": {"all": false}}
  ],
  "audit": {"file": "$TRAIL", "fsync_interval_ms": 20}
}
EOF
facts() { /usr/bin/python3 "$top/tests/audit/facts.py" "$TRAIL" "$@"; }

pw_start_pgwardd "$CONF" "$W/pgwardd.log" || {
	echo "not ok - pgwardd did not start"
	sed 's/^/#   /' "$W/pgwardd.log"
	exit 1
}
DIRECT4="host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable"

# 1. a steered psql: the redirect record and the session's kernel facts
out=$(in_cg bash -c "echo \$\$ >'$W/bash.pid'; '$PSQL' '$DIRECT4' -Atc 'SELECT 1'" 2>&1)
check "in the cgroup: psql lands in pgwardd ($out)" test "$out" = 1
sleep 0.3
# (bash -c runs its last command in its own process: $$ is psql's pid)
ppid=$(cat "$W/bash.pid")
check "a redirect record: psql ($ppid), its exe, the cgroup, uid 0, the dialled address, a bash its parent" \
	facts has redirect "kernel.pid=$ppid" kernel.comm=psql 'kernel.exe~/bin/psql$' "kernel.cgroup=/$CGNAME" \
	kernel.uid=0 "kernel.dst=127.0.0.1:$DB" kernel.ancestors.0.comm=bash
check "session_start: identity agent, steered, the same kernel facts" \
	facts has session_start identity=agent steered=true "kernel.pid=$ppid" kernel.comm=psql \
	"kernel.cgroup=/$CGNAME" matched.cgroup="/$CGNAME"
check "the redirect and the session name the same process" /usr/bin/python3 -c "
import json, sys
recs = [json.loads(l) for l in open('$TRAIL')]
r = [x['kernel']['pid'] for x in recs if x['type'] == 'redirect']
s = [x['kernel']['pid'] for x in recs if x['type'] == 'session_start']
sys.exit(not (r and s and r[-1] == s[-1]))"

# 2. a connection to the steered listener that the kernel did not steer: a tuple miss
/usr/bin/python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $SPORT), timeout=5)
s.sendall(b'\0\0\0\x08\x04\xd2\x16\x2f')
try: s.recv(100)
except Exception: pass"
sleep 0.3
check "a connection to the steered listener without a kernel record: tuple_miss" facts has tuple_miss 'client~^127.0.0.1:'

# 3. pgwardd dead: refused connects are kept in the pinned ring buffer for the next pgwardd
kill -9 "$PGWARDD_PID"
wait "$PGWARDD_PID" 2>/dev/null
sleep 0.5 # the heartbeat goes stale
res=$(in_cg /usr/bin/python3 -c "
import socket
try:
    socket.create_connection(('127.0.0.1', $DB), timeout=5); print('connected')
except ConnectionRefusedError:
    print('refused')")
check "fail-closed: with pgwardd dead a steered connect is refused ($res)" test "$res" = refused
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
sleep 0.5
check "the next pgwardd records the refused connect: connect_refused, enforcer_down, python3" \
	facts has connect_refused reason=enforcer_down kernel.comm=python3 "kernel.cgroup=/$CGNAME" "kernel.dst=127.0.0.1:$DB"
check "the next pgwardd took the chain up" facts has audit_start resumed=true
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "the trail verifies across the kill" "$BUILD/pgwardctl" audit verify "$TRAIL"
"$BUILD/pgwardd" --uninstall --config "$CONF" >/dev/null 2>&1
finish
