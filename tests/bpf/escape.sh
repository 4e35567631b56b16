#!/usr/bin/env bash
# Ways around the steering, tried as an agent would (issue 9), each against a live
# PostgreSQL whose password the agent knows: reaching it directly shows as the server asking
# for a password; pgwardd answers a trust identity without asking. The agent runs as uid
# 4242 (no capabilities) inside the scope cgroup unless a test says otherwise.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
source "$top/scripts/pgtmp.sh"
source "$top/tests/integration/lib.sh"
source "$here/lib.sh"

bpf_setup escape

PGTMP_QUIET=1 PGTMP_LISTEN='127.0.0.1,::1' pgtmp_start escape >/dev/null || { echo "not ok - cluster did not start"; exit 1; }
W=$PGTMP_DIR/pgward
mkdir -p "$W/own"
chmod 755 "$PGTMP_DIR" "$W" "$W/own"
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
DENYPORT=$(pw_free_port)
DB=$PGTMP_PORT
CONF=$W/pgwardd.json
PSQL=$PGTMP_PGBIN/psql
AGENT=(setpriv --reuid=4242 --regid=4242 --clear-groups)

write_config() { # extra JSON merged into "redirect"
	cat >"$CONF" <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 1,
  "listen": [{"host": "127.0.0.1", "port": $PORT}, {"unix": "$W/own/.s.PGSQL.$DB"}],
  "upstreams": {
    "db": {"host": "127.0.0.1", "port": $DB, "user": "postgres",
           "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}
  },
  "redirect": {"cgroups": ["$CG"], "ports": [$DB], "fastpath": false,
               "heartbeat_timeout_seconds": 0.3, "pin_path": "$PIN",
               "listen4": "127.0.0.1", "listen4_port": $SPORT, "listen6": "::1",
               "deny": [{"net": "127.0.0.1", "port": $DENYPORT}]},
  "identities": [
    {"name": "psql-agent", "match": {"cgroup": "/$CGNAME", "exe": "/usr/lib/postgresql/*/bin/psql", "user": "exectest"}, "auth": "trust", "upstream": "db", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "supervised", "match": {"cgroup": "/$CGNAME", "ancestor_exe": "$W/supervisor", "application_name": "supervised"}, "auth": "trust", "upstream": "db", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "uid-agent", "match": {"uid": 4243}, "auth": "trust", "upstream": "db", "rules": [{"action": "allow"}], "guardrails": {"all": false}},
    {"name": "raw", "match": {"application_name": "raw"}, "auth": "trust", "upstream": "db", "rules": [{"action": "allow"}], "guardrails": {"all": false}}
  ]
}
EOF
	if [[ -n ${1:-} ]]; then
		python3 - "$CONF" "$1" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["redirect"].update(json.loads(sys.argv[2]))
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
	fi
}

# who answers a connect to HOST:PORT from whoever runs this: "pgwardd" (trust: AuthenticationOk
# at once), "direct" (PostgreSQL asks for a password), "refused", or an error
cat >"$W/probe.py" <<'EOF'
import os, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
proto = int(os.environ.get('PROTO', '0'))
s = socket.socket(fam, socket.SOCK_STREAM, proto)
if os.environ.get('MOVE_TO'):
    # the socket exists first; only then does this process enter the scope
    open(os.environ['MOVE_TO'], 'w').write(str(os.getpid()))
try:
    s.settimeout(10)
    s.connect((host, port))
except ConnectionRefusedError:
    print('refused'); sys.exit(0)
except OSError as e:
    print('error', e.errno); sys.exit(0)
peer = s.getpeername()
p = b'user\0postgres\0database\0postgres\0application_name\0raw\0\0'
s.sendall(struct.pack('!II', 8 + len(p), 196608) + p)
d = s.recv(9)
if len(d) >= 9 and d[:1] == b'R':
    code = struct.unpack('!I', d[5:9])[0]
    what = 'pgwardd' if code == 0 else 'direct'
else:
    what = 'other:%r' % d[:1]
if os.environ.get('PEER'):
    what += ' %s:%d' % peer[:2]
print(what)
EOF
probe() { python3 "$W/probe.py" "$@" 2>&1; }

write_config
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || { echo "not ok - pgwardd did not start"; cat "$W/pgwardd.log"; exit 1; }
check "control: in scope, the agent's connect lands in pgwardd" test "$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/probe.py" 127.0.0.1 "$DB")" = pgwardd
check "control: outside the scope the same connect goes to the database" test "$(probe 127.0.0.1 "$DB")" = direct

# 1. a socket made outside the scope, connected from inside it
out=$(MOVE_TO=$CG/cgroup.procs probe 127.0.0.1 "$DB")
check "a socket made before the process entered the scope is steered when it connects ($out)" test "$out" = pgwardd

# 2. scope by uid: a process of a scoped uid outside every scoped cgroup
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
write_config '{"uids": [4243]}'
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
out=$(setpriv --reuid=4243 --regid=4243 --clear-groups "$PSQL" -X "host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable" -Atc 'SELECT current_user' 2>&1)
check "uids: a process of uid 4243 outside the cgroups is steered ($out)" \
	bash -c "test '$out' = postgres && grep -q 'identity=uid-agent' '$W/pgwardd.log'"
/usr/bin/python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c["redirect"]["uids"] = [0]; json.dump(c, open(sys.argv[2], "w"))' "$CONF" "$W/uid0.json"
out=$("$BUILD/pgwardctl" config check "$W/uid0.json" 2>&1)
check "config: uid 0 cannot be scoped ($out)" grep -q 'root cannot be fenced' <<<"$out"

# 3. exe is taken at connect time: connect, then exec a trusted binary while a sibling keeps
# using the socket (psql-agent trusts psql's executable)
cat >"$W/execrace.py" <<EOF
import os, socket, struct, sys, time
s = socket.create_connection(('127.0.0.1', $DB))
if os.fork() == 0:
    time.sleep(1.0) # the parent runs psql by now
    p = b'user\0exectest\0database\0postgres\0\0'
    s.sendall(struct.pack('!II', 8 + len(p), 196608) + p)
    d = s.recv(4096)
    print('R' if d[:1] == b'R' else d.decode('latin1', 'replace').replace('\0', ' ')[:300])
    os._exit(0)
s.close()
# psql, steered and trusted in its own right, stays alive while the child logs in
os.execv('$PSQL', ['psql', '-X', 'host=127.0.0.1 port=$DB user=exectest dbname=postgres sslmode=disable', '-Atc', 'SELECT pg_sleep(2)'])
EOF
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/execrace.py" 2>&1 | head -1)
check "exec after connect: the trusted binary's name does not lend its identity ($out)" \
	grep -q 'no identity matches' <<<"$out"
out=$(in_cg "${AGENT[@]}" "$PSQL" -X "host=127.0.0.1 port=$DB user=exectest dbname=postgres sslmode=disable" -Atc 'SELECT 5' 2>&1)
check "control: psql itself gets psql-agent ($out)" test "$out" = 5

# 4. a mount namespace of the agent's: its own binary bind-mounted over the trusted path
cp "$PSQL" "$W/not-psql"
chmod 755 "$W/not-psql"
out=$(in_cg "${AGENT[@]}" unshare -Urm sh -c "mount --bind '$W/not-psql' '$PSQL' && exec '$PSQL' -X 'host=127.0.0.1 port=$DB user=exectest dbname=postgres sslmode=disable' -Atc 'SELECT 5'" 2>&1)
check "bind mount over the trusted path in a user+mount namespace: no identity ($out)" \
	grep -q 'no identity matches' <<<"$out"

# 5. lineage: an ancestor counts only if it ran the binary when it forked the chain (the
# supervisor: a copy of timeout(1), so that no ancestor of this test's own can be it)
cp /usr/bin/timeout "$W/supervisor"
SUP="host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable application_name=supervised"
out=$(in_cg "${AGENT[@]}" "$W/supervisor" 20 "$PSQL" -X "$SUP" -Atc 'SELECT 7' 2>&1)
check "control: psql started by the supervisor gets identity supervised ($out)" test "$out" = 7
out=$(in_cg "${AGENT[@]}" bash -c "(sleep 0.5; exec '$PSQL' -X '$SUP' -Atc 'SELECT 7') & exec '$W/supervisor' 5 sleep 2" 2>&1)
check "a parent that forks the agent and then execs the supervisor is not its supervisor ($out)" \
	grep -q 'no identity matches' <<<"$out"

# 6. comm is what a process says: policy check warns when it is all that tells two apart
cat >"$W/comm.json" <<EOF
{"listen": [{"host": "127.0.0.1", "port": $PORT}],
 "upstreams": {"db": {"host": "127.0.0.1", "port": $DB, "user": "postgres", "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}},
 "redirect": {"cgroups": ["$CG"]},
 "identities": [
  {"name": "admin-tool", "match": {"cgroup": "/$CGNAME", "comm": "pg_admin"}, "auth": "trust", "rules": [{"action": "allow"}]},
  {"name": "agent", "match": {"cgroup": "/$CGNAME"}, "auth": "trust", "rules": [{"action": "allow", "class": ["select"]}]}]}
EOF
out=$("$BUILD/pgwardctl" policy check "$W/comm.json" 2>&1)
check "policy check warns that only comm tells admin-tool from agent" grep -q 'warning: identities "admin-tool" and "agent" are told apart only by comm' <<<"$out"

# 6b. unix sockets: a connect from the scope to a PostgreSQL socket of a steered port is refused
# in the kernel (cgroup/connect_unix), by path or abstract name; pgwardd's own listener is not
cat >"$W/uprobe.py" <<'EOF'
import socket, struct, sys
path = sys.argv[1].replace('@', '\0', 1) if sys.argv[1].startswith('@') else sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.settimeout(10)
    s.connect(path)
except PermissionError:
    print('EACCES'); sys.exit(0)
except OSError as e:
    print('error', e.errno); sys.exit(0)
p = b'user\0postgres\0database\0postgres\0application_name\0raw\0\0'
s.sendall(struct.pack('!II', 8 + len(p), 196608) + p)
d = s.recv(9)
if len(d) >= 9 and d[:1] == b'R':
    print('pgwardd' if struct.unpack('!I', d[5:9])[0] == 0 else 'direct')
else:
    print('connected')
EOF
SOCK=$PGTMP_SOCKDIR/.s.PGSQL.$DB
chmod 755 "$PGTMP_SOCKDIR"
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/uprobe.py" "$SOCK")
check "unix: the cluster's socket is refused from the scope ($out)" test "$out" = EACCES
check "unix: the refusal is an event in pgwardd's log" pw_wait_log "$W/pgwardd.log" "unix-refused pid=.*uid=4242 .*dst=unix:.s.PGSQL.$DB" 3
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/uprobe.py" "$PGTMP_SOCKDIR/./.s.PGSQL.$DB")
check "unix: and by another spelling of its directory ($out)" test "$out" = EACCES
out=$(setpriv --reuid=4242 --regid=4242 --clear-groups /usr/bin/python3 "$W/uprobe.py" "$SOCK")
check "unix: outside the scope it is the database ($out)" test "$out" = direct
/usr/bin/python3 -c "
import socket, time
s = socket.socket(socket.AF_UNIX); s.bind('\0pgw-escape/.s.PGSQL.$DB'); s.listen(4); time.sleep(30)" &
absl=$!
sleep 0.3
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/uprobe.py" "@pgw-escape/.s.PGSQL.$DB")
check "unix: an abstract PostgreSQL socket name is refused too ($out)" test "$out" = EACCES
kill "$absl" 2>/dev/null
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/uprobe.py" "$W/own/.s.PGSQL.$DB")
check "unix: pgwardd's own unix listener for the same port is reachable ($out)" test "$out" = pgwardd
# the name is matched as written: a symlink reaches the socket, so its permissions must keep
# agents out; pgwardd --check says so while they let everyone in
out=$("$BUILD/pgwardd" --config "$CONF" --check 2>&1)
check "pgwardd --check warns that a world-connectable socket is reachable by another name" \
	grep -q "warning: PostgreSQL's unix socket .*/.s.PGSQL.$DB (mode 0777): connects from the scope by this name are refused, but any local user" <<<"$out"
check "pgwardd --check says nothing of its own listener" bash -c "! grep -q '$W/own' <<<\"\$1\"" _ "$out"
ln -sf "$SOCK" "$W/innocent"
chmod 0770 "$SOCK"
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/uprobe.py" "$W/innocent")
check "unix: with the socket at 0770 another name gets nowhere either ($out)" test "$out" = EACCES
out=$("$BUILD/pgwardd" --config "$CONF" --check 2>&1)
check "pgwardd --check is quiet about a socket agents cannot use" bash -c "! grep -q 'unix socket .*s.PGSQL.$DB' <<<\"\$1\"" _ "$out"
chmod 0777 "$SOCK"
sed 's/"ports": \[/"unix": "sometimes", "ports": [/' "$CONF" >"$W/unix-bad.json"
out=$("$BUILD/pgwardctl" config check "$W/unix-bad.json" 2>&1)
check "config: redirect.unix is refuse or allow ($out)" grep -q '\$.redirect.unix.*refuse' <<<"$out"
sed 's/"ports": \[/"unix": "allow", "ports": [/' "$CONF" >"$W/unix-allow.json"
out=$("$BUILD/pgwardd" --check --config "$W/unix-allow.json" 2>&1)
check "pgwardd --check: with unix allow the socket is named as not covered" \
	grep -q "unix socket .*/.s.PGSQL.$DB (mode 0777) is not covered by the redirect (redirect.unix is \"allow\")" <<<"$out"

# 7. the deny list: another way to the database (a pooler's port) is refused from the scope
python3 -c "
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $DENYPORT)); s.listen(16); time.sleep(30)" &
pooler=$!
sleep 0.3
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/probe.py" 127.0.0.1 "$DENYPORT")
check "deny: a connect from the scope to 127.0.0.1:$DENYPORT is refused ($out)" test "$out" = refused
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/probe.py" ::ffff:127.0.0.1 "$DENYPORT")
check "deny: the same through an IPv4-mapped address ($out)" test "$out" = refused
check "deny: the refusal is an event in pgwardd's log" pw_wait_log "$W/pgwardd.log" "denied pid=.*dst=127.0.0.1:$DENYPORT" 3
out=$(timeout 5 python3 -c "import socket; socket.create_connection(('127.0.0.1', $DENYPORT)); print('connected')" 2>&1)
check "deny: outside the scope the port is reachable ($out)" test "$out" = connected
kill "$pooler" 2>/dev/null

# 8. MPTCP: steered, and getpeername shows the dialled address
out=$(in_cg "${AGENT[@]}" env PROTO=262 PEER=1 /usr/bin/python3 "$W/probe.py" 127.0.0.1 "$DB")
check "MPTCP: steered, getpeername shows 127.0.0.1:$DB ($out)" test "$out" = "pgwardd 127.0.0.1:$DB"

# 9. a stop never opens the gate: a connect loop across SIGTERM never reaches the database
cat >"$W/loop.py" <<EOF
import socket, struct, time, collections
seen = collections.Counter()
end = time.monotonic() + 3
while time.monotonic() < end:
    try:
        s = socket.create_connection(('127.0.0.1', $DB), timeout=2)
        p = b'user\0postgres\0database\0postgres\0application_name\0raw\0\0'
        s.sendall(struct.pack('!II', 8 + len(p), 196608) + p)
        d = s.recv(9)
        seen['direct' if d[:1] == b'R' and d[5:9] != b'\0\0\0\0' else 'pgwardd' if d[:1] == b'R' else 'closed'] += 1
        s.close()
    except ConnectionRefusedError:
        seen['refused'] += 1
    except OSError:
        seen['error'] += 1
print(' '.join('%s=%d' % kv for kv in sorted(seen.items())))
EOF
in_cg "${AGENT[@]}" /usr/bin/python3 "$W/loop.py" >"$W/loop.out" 2>&1 &
looper=$!
sleep 1
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
wait "$looper"
out=$(cat "$W/loop.out")
check "SIGTERM under a connect loop: nothing went to the database directly ($out)" \
	bash -c "grep -q 'refused=[1-9]' <<<'$out' && ! grep -q direct <<<'$out'"
check "after a stop the programs stay attached and pinned" test -d "$PIN/links"

# 10. pid reuse: with pgwardd dead, a process holding its old pid is refused like any other
write_config
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
dead=$PGWARDD_PID
kill -9 "$dead"
wait "$dead" 2>/dev/null
sleep 0.5
got=""
for try in 1 2 3 4 5 6 7 8 9 10; do
	echo $((dead - 1)) >/proc/sys/kernel/ns_last_pid
	got=$(in_cg "${AGENT[@]}" /usr/bin/python3 -c "
import os, socket
try:
    socket.create_connection(('127.0.0.1', $DB), timeout=3); r = 'connected'
except ConnectionRefusedError:
    r = 'refused'
print(os.getpid(), r)")
	[[ ${got%% *} == "$dead" ]] && break
done
check "pid reuse: the dead pgwardd's pid ($dead) gets no pass ($got)" test "$got" = "$dead refused"

# 11. the steered port cannot be squatted in the gap, and the next pgwardd starts
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 -c "
import socket
r = []
for host in ('127.0.0.1', '0.0.0.0'):
    s = socket.socket()
    try:
        s.bind((host, $SPORT)); r.append('bound')
    except PermissionError:
        r.append('EPERM')
print(' '.join(r))" 2>&1)
check "squat: binding the steered port from the scope is refused ($out)" test "$out" = "EPERM EPERM"
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 -c "
import socket
s = socket.socket(socket.AF_INET6)
try:
    s.bind(('::', $SPORT)); print('bound')
except PermissionError:
    print('EPERM')" 2>&1)
check "squat: and over IPv6 ($out)" test "$out" = EPERM
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
check "after the gap the next pgwardd takes over and steers" test "$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/probe.py" 127.0.0.1 "$DB")" = pgwardd

# 12. destinations: a database on this host is reachable through all its addresses
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
write_config '{"destinations": ["127.0.0.2/32"]}'
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
for a in 127.0.0.1 ::1 ::ffff:127.0.0.1 0.0.0.0; do
	out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/probe.py" "$a" "$DB")
	check "destinations name this host: $a is steered too ($out)" test "$out" = pgwardd
done
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
write_config '{"destinations": ["10.255.255.0/24"]}'
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/probe.py" 127.0.0.1 "$DB")
check "destinations elsewhere: this host's database is not steered ($out)" test "$out" = direct
write_config '{"destinations": ["::ffff:127.0.0.0/104"]}'
check "config: an IPv4-mapped destination is taken as IPv4" "$BUILD/pgwardctl" config check "$CONF"
write_config '{"destinations": ["::ffff:0:0/95"]}'
check "config: a mapped network wider than the mapped range is refused" bash -c "! '$BUILD/pgwardctl' config check '$CONF' >/dev/null 2>&1"

kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "uninstall opens the gate, and says so" bash -c "'$BUILD/pgwardd' --uninstall --config '$CONF' | grep -q 'agents. connects go where they are dialled'"
out=$(in_cg "${AGENT[@]}" /usr/bin/python3 "$W/probe.py" 127.0.0.1 "$DB")
check "after uninstall the connect goes to the database ($out)" test "$out" = direct
finish
