#!/usr/bin/env bash
# The steered path with the sockmap fast path on, and a --keep-pinned restart under load.
# Known history: Cilium and dae removed their sockmap redirects after kernel bugs around
# half-close, splice and EOF, so exactly those cases are exercised here, plus the core
# issue's libpq, pgbench and COPY checks, through steered connections.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
source "$top/scripts/pgtmp.sh"
source "$top/tests/integration/lib.sh"
source "$here/lib.sh"

bpf_setup fp

PGTMP_QUIET=1 pgtmp_start fp >/dev/null || { echo "not ok - cluster did not start"; exit 1; }
W=$PGTMP_DIR/pgward
mkdir -p "$W"
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
DB=$PGTMP_PORT
CONF=$W/pgwardd.json
cat >"$CONF" <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 5,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {"db": {"host": "127.0.0.1", "port": $DB, "user": "postgres",
                       "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}},
  "redirect": {"cgroups": ["$CG"], "ports": [$DB], "pin_path": "$PIN",
               "heartbeat_timeout_seconds": 0.5, "listen4": "127.0.0.1", "listen4_port": $SPORT,
               "listen6": ""},
  "identities": [{"name": "agent", "match": {"cgroup": "/$CGNAME"}, "auth": "trust", "rules": [{"action": "allow"}], "guardrails": {"all": false}}]
}
EOF
pw_start_pgwardd "$CONF" "$W/pgwardd.log" --keep-pinned || { echo "not ok - pgwardd did not start"; cat "$W/pgwardd.log"; exit 1; }
CI="host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable"
counter() { # fast path redirect counter, summed over CPUs
	bpftool -j map dump pinned "$PIN/maps/pw_counters" 2>/dev/null | python3 -c "
import json, sys
d = json.load(sys.stdin)
idx = int(sys.argv[1])
for e in d:
    k = e.get('key'); k = int(k[0], 16) if isinstance(k, list) else k
    if k == idx:
        print(sum(v['value'] if isinstance(v['value'], int) else int(''.join(reversed(v['value'])).replace('0x',''), 16) for v in e['values']))" "$1"
}

check "fast path: psql through the steered path" test "$(in_cg psql "$CI" -Atc 'SELECT 41 + 1')" = 42
fp=$(counter 6)
check "fast path: the sockmap carried the traffic ($fp messages redirected)" test "${fp:-0}" -gt 0
for t in extended pipeline cancel notify; do
	run_tap "$IN_CG" "$BUILD/tests/pgtest" "$t" "$CI"
done
run_tap "$IN_CG" "$BUILD/tests/pgtest" copy "$CI" 20000
check "fast path: pgbench -i" in_cg pgbench -i -q -s 1 "$CI"
for m in simple extended prepared; do
	check "fast path: pgbench -M $m, 8 clients" in_cg pgbench -n -M "$m" -c 8 -j 2 -t 200 "$CI"
done
check "fast path: pgbench -C" in_cg pgbench -n -C -S -c 4 -j 2 -t 100 "$CI"

# a 100 MB COPY in and out through psql
{ head -c 100000000 /dev/zero | tr '\0' 'x' | fold -w 1000; echo; } >"$W/big.txt"
in_cg psql "$CI" -qc 'CREATE TABLE big(t text)' >/dev/null
check "fast path: 100 MB COPY in" in_cg psql "$CI" -qc "\\copy big FROM '$W/big.txt'"
check "fast path: 100 MB COPY out is identical" bash -c "'$IN_CG' psql '$CI' -qc \"\\\\copy big TO '$W/big.out'\" && cmp '$W/big.txt' '$W/big.out'"

# half-close: the client shuts its write side after the query and must still read everything
# (a Python exception's last line lands in the check's name)
hc=$(in_cg python3 -c "
import socket, struct
s = socket.create_connection(('127.0.0.1', $DB), timeout=10)
p = b'user\0postgres\0database\0postgres\0\0'
s.sendall(struct.pack('!II', 8 + len(p), 196608) + p)
buf = b''
while b'Z\0\0\0\5' not in buf:
    buf += s.recv(65536)
q = b'SELECT repeat(chr(65), 3000000)\0'
s.sendall(b'Q' + struct.pack('!I', 4 + len(q)) + q + b'X\0\0\0\4')
s.shutdown(socket.SHUT_WR)
got = b''
while True:
    d = s.recv(1 << 20)
    if not d: break
    got += d
print(got.count(b'A'), got.count(b'Z\0\0\0\5'))" 2>&1 | tail -1)
check "fast path: half-close after Terminate still delivers a 3 MB result, then EOF ($hc)" test "$hc" = "3000000 1"

# --keep-pinned restart under load: no connection may bypass pgwardd (the database wants a
# password the clients do not have, so a bypass shows up as a password error)
cat >"$W/load.sh" <<EOF
end=\$((SECONDS + 6))
while [ \$SECONDS -lt \$end ]; do
	psql "$CI" -Atc 'SELECT 1' >/dev/null 2>>"$W/load.err" && echo ok >>"$W/load.ok"
done
EOF
: >"$W/load.err"
: >"$W/load.ok"
in_cg bash "$W/load.sh" &
loader=$!
sleep 2
old=$PGWARDD_PID
kill -TERM "$old"
pw_start_pgwardd "$CONF" "$W/pgwardd2.log" || echo "not ok - the new pgwardd did not start"
pw_wait_log "$W/pgwardd2.log" 'eBPF redirect: ' 10
wait "$old" 2>/dev/null
check "restart: the new pgwardd took the pinned programs over" bash -c "grep -q 'took over the pinned maps' '$W/pgwardd2.log' || { grep -v debug '$W/pgwardd2.log' | tail -5 >&2; false; }"
wait "$loader"
check "restart under load: connections kept succeeding ($(wc -l <"$W/load.ok"))" test "$(wc -l <"$W/load.ok")" -gt 10
check "restart under load: no steered connection went unidentified" \
	bash -c "! grep -h -B3 'not identified by the kernel' '$W/pgwardd.log' '$W/pgwardd2.log' >&2"
check "restart under load: no connection bypassed pgwardd" bash -c "! grep -qi password '$W/load.err'"
finish
