#!/usr/bin/env bash
# The eBPF redirect end to end, as root: a throwaway cgroup v2 directory, a throwaway
# PostgreSQL on 127.0.0.1 (and ::1) standing in for the remote database, pgwardd with a
# "redirect" section, and real clients (psql, python3) whose connection strings name the
# database directly. As root these tests run; elsewhere they are skipped loudly.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
source "$top/scripts/pgtmp.sh"
source "$top/tests/integration/lib.sh"
source "$here/lib.sh"

bpf_setup redirect

PGTMP_QUIET=1 PGTMP_LISTEN='127.0.0.1,::1' pgtmp_start bpf >/dev/null || { echo "not ok - cluster did not start"; exit 1; }
W=$PGTMP_DIR/pgward
mkdir -p "$W"
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
DB=$PGTMP_PORT
CONF=$W/pgwardd.json
PSQL=$PGTMP_PGBIN/psql

write_config() { # $1 fail mode
	cat >"$CONF" <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {
    "db4": {"host": "127.0.0.1", "port": $DB, "user": "postgres", "max_connections": 250,
            "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"},
    "db6": {"host": "::1", "port": $DB, "user": "postgres",
            "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}
  },
  "redirect": {"cgroups": ["$CG"], "ports": [$DB], "fail_mode": "$1", "fastpath": false,
               "heartbeat_timeout_seconds": 0.3, "pin_path": "$PIN",
               "listen4": "127.0.0.1", "listen4_port": $SPORT, "listen6": "::1"},
  "identities": [
    {"name": "nobody-agent", "match": {"uid": 65534, "cgroup": "/$CGNAME"}, "auth": "trust", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "py-psql", "match": {"ancestor_comm": "python3", "comm": "psql"}, "auth": "trust", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "agent", "match": {"cgroup": "/$CGNAME", "exe": "/usr/lib/postgresql/*/bin/psql"}, "auth": "trust", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "agent-any", "match": {"cgroup": "/$CGNAME", "application_name": "raw"}, "auth": "trust", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "explicit", "match": {"user": "postgres"}, "auth": "trust", "upstream": "db4", "rules": [{"action": "allow"}], "guardrails": {"all": false}}
  ]
}
EOF
}

# 0. the object passes this kernel's verifier on its own, program by program (bpftool)
vpin=/sys/fs/bpf/pgward-verify-$$
check "bpftool prog loadall: every program of pgward.bpf.o loads on $(uname -r)" \
	bash -c "bpftool prog loadall '$BUILD/bpf/pgward.bpf.o' '$vpin' && test \$(ls '$vpin' | wc -l) = 9; rc=\$?; rm -rf '$vpin'; exit \$rc"

write_config closed
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || { echo "not ok - pgwardd did not start"; cat "$W/pgwardd.log"; exit 1; }

DIRECT4="host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable"
DIRECT6="host=::1 port=$DB user=postgres dbname=postgres sslmode=disable"

# 1. the unchanged connection string lands in pgwardd, which logs in with what it holds
out=$(in_cg "$PSQL" "$DIRECT4" -Atc 'SELECT 1' 2>&1)
check "in the cgroup: psql with the database's address lands in pgwardd ($out)" test "$out" = 1
check "pgwardd saw the caller: pid, uid 0, exe, cgroup, ancestry" \
	pw_wait_log "$W/pgwardd.log" "identity=agent upstream=db4 caller: pid [0-9]* uid 0 gid 0 comm \"psql\" exe \"/usr/lib/postgresql/15/bin/psql\" cgroup \"/$CGNAME\" ancestors \"bash\""
out=$(psql "$DIRECT4" -Atc 'SELECT 1' 2>&1)
check "outside the cgroup: the same string goes straight to the database (which wants a password)" \
	grep -q 'password' <<<"$out"

# 2. getpeername tells the agent the address it dialled
gp=$(in_cg python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $DB))
print('%s:%d' % s.getpeername())")
check "getpeername returns the dialled address ($gp)" test "$gp" = "127.0.0.1:$DB"

# 3. IPv6 and IPv4-mapped
out=$(in_cg "$PSQL" "$DIRECT6" -Atc "SELECT 6" 2>&1)
check "IPv6 (::1) is steered ($out)" test "$out" = 6
gp=$(in_cg python3 -c "
import socket
s = socket.socket(socket.AF_INET6)
s.connect(('::ffff:127.0.0.1', $DB))
print('%s:%d' % s.getpeername()[:2])")
check "IPv4-mapped IPv6 is steered and getpeername keeps the mapped address ($gp)" test "$gp" = "::ffff:127.0.0.1:$DB"
out=$(in_cg "$PSQL" "host=::ffff:127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable" -Atc "SELECT 4" 2>&1)
check "psql over an IPv4-mapped address works through pgwardd ($out)" test "$out" = 4

# 4. identities on kernel facts
out=$(in_cg setpriv --reuid=65534 --regid=65534 --clear-groups "$PSQL" "$DIRECT4" -Atc "SELECT current_user" 2>&1)
check "uid match: a client running as nobody gets identity nobody-agent ($out)" \
	bash -c "test '$out' = postgres && grep -q 'identity=nobody-agent.*uid 65534' '$W/pgwardd.log'"
out=$(in_cg bash -c "python3 -c \"import subprocess; subprocess.run(['$PSQL', '$DIRECT4', '-Atc', 'SELECT 3'])\"" 2>&1)
check "ancestry match: bash -> python3 -> psql gets identity py-psql ($out)" \
	bash -c "test '$out' = 3 && grep -q 'identity=py-psql.*ancestors \"python3\"([0-9]*)<-\"bash\"' '$W/pgwardd.log'"
out=$(in_cg python3 -c "
import socket, struct
s = socket.create_connection(('127.0.0.1', $DB))
p = b'user\\0nobody2\\0\\0'
s.sendall(struct.pack('!II', 8 + len(p), 196608) + p)
print(s.recv(4096))" 2>&1)
check "no identity: FATAL 28000 names what the kernel saw" grep -q 'no identity matches.*caller: pid' <<<"$out"

# 5. many concurrent steered connections, each identified
cat >"$W/many.py" <<EOF
import socket, struct, sys, threading
N = 200
ok = [False] * N
def one(i):
    try:
        s = socket.create_connection(('127.0.0.1', $DB), timeout=20)
        params = b'user\0postgres\0database\0postgres\0application_name\0raw\0\0'
        s.sendall(struct.pack('!II', 8 + len(params), 196608) + params)
        buf = b''
        while not b'Z\0\0\0\5' in buf:
            d = s.recv(65536)
            if not d: break
            buf += d
        s.sendall(b'Q\0\0\0\x0eSELECT 1;\0')
        while buf.count(b'Z\0\0\0\5') < 2:
            d = s.recv(65536)
            if not d: break
            buf += d
        ok[i] = buf.count(b'Z\0\0\0\5') >= 2
        barrier.wait()
        s.close()
    except Exception as e:
        print(e, file=sys.stderr)
barrier = threading.Barrier(N, timeout=60)
ts = [threading.Thread(target=one, args=(i,)) for i in range(N)]
[t.start() for t in ts]
[t.join() for t in ts]
print(sum(ok))
EOF
n=$(in_cg python3 "$W/many.py" 2>/dev/null)
check "200 concurrent steered connections all served and identified ($n)" test "$n" = 200
check "zero tuple misses so far" bash -c "! grep -q 'not identified by the kernel' '$W/pgwardd.log'"

# 6. explicit clients of the listener keep working beside the redirect
out=$(psql "host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable" -Atc 'SELECT 2' 2>&1)
check "the explicit listener still serves ($out)" test "$out" = 2

# 7. fail-closed: pgwardd gone (links stay pinned), connects are refused at once
root_c4=$(($(bpftool cgroup show "$CGROOT" | grep -c pw_connect4) - 1))
kill -9 "$PGWARDD_PID"
wait "$PGWARDD_PID" 2>/dev/null
sleep 0.5 # the heartbeat goes stale
res=$(in_cg python3 -c "
import socket, time
t = time.monotonic()
try:
    socket.create_connection(('127.0.0.1', $DB), timeout=5); print('connected')
except ConnectionRefusedError:
    print('refused %.1f' % ((time.monotonic() - t) * 1000))")
check "fail-closed: with pgwardd dead a steered connect is refused ($res ms)" \
	python3 -c "import sys; w = '$res'.split(); sys.exit(not (w[0] == 'refused' and float(w[1]) < 100))"
check "pgwardd --uninstall removes every pin" bash -c "'$BUILD/pgwardd' --uninstall --config '$CONF' && test ! -e '$PIN'"
check "after uninstall neither the root nor the cgroup has a program of this pin set" \
	bash -c "! bpftool cgroup show '$CG' | grep -q . && test \$(bpftool cgroup show '$CGROOT' | grep -c pw_connect4) = '$root_c4'"

# 8. fail-open: pgwardd gone, connects go direct
write_config open
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
kill -9 "$PGWARDD_PID"
wait "$PGWARDD_PID" 2>/dev/null
sleep 0.5
out=$(in_cg "$PSQL" "$DIRECT4" -Atc 'SELECT 1' 2>&1)
check "fail-open: with pgwardd dead the connect goes straight to the database" grep -q 'password' <<<"$out"
"$BUILD/pgwardd" --uninstall --config "$CONF" >/dev/null 2>&1

# 9. a destination filter: only the listed networks are steered (a network elsewhere: this
# host's database is not steered; tests/bpf/escape.sh has the host's own addresses)
write_config closed
python3 - "$CONF" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["redirect"]["destinations"] = ["10.255.255.0/24"]
json.dump(c, open(sys.argv[1], "w"))
PY
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
out=$(in_cg "$PSQL" "$DIRECT4" -Atc 'SELECT 1' 2>&1)
check "destinations: 127.0.0.1 is outside the filter and goes direct" grep -q 'password' <<<"$out"
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"

# 10. a normal stop leaves the gate closed: everything stays pinned and attached, connects are
# refused until the next pgwardd
write_config closed
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "after a normal stop the pins stay" test -d "$PIN/links"
check "after a normal stop the programs stay on the cgroup root" bash -c "bpftool cgroup show '$CGROOT' | grep -q pw_connect4"
out=$(in_cg "$PSQL" "$DIRECT4" -Atc 'SELECT 1' 2>&1)
check "after a normal stop a steered connect is refused ($out)" grep -q 'Connection refused' <<<"$out"
check "pgwardd's log says the gate stays closed" grep -q 'left pinned at .*fail-closed: agents. connects are refused' "$W/pgwardd.log"
"$BUILD/pgwardd" --uninstall --config "$CONF" >/dev/null 2>&1
finish
