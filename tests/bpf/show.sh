#!/usr/bin/env bash
# What the control socket shows of the kernel side (include/pgward/loader_show.h), as root,
# against the running kernel: tests/bpf/show_driver.c loads the redirect for real and answers
# prog show, map show, map dump, cgroup show/add/del, and writes the event pipe's lines; this
# script checks them field by field (python3, no jq), with bpftool and the filesystem as the
# other witnesses. Throwaway cgroups below $CG: a (the configuration's scope), b and c (added at
# run time), self (where the driver, playing pgwardd, runs). Loopback only: agents dial
# 127.0.0.2 (steered) and 127.0.0.3 (denied); the "enforcer" listens on 127.0.0.1.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
source "$top/tests/integration/lib.sh"
source "$here/lib.sh"

bpf_setup show

W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-show.XXXXXX")
OVDIR=$W/state/pgward # made by the first cgroup add
OVFILE=$OVDIR/cgroup-overrides.json
CONF=$W/pgwardd.json
EVENTS=$W/events.jsonl
LOG=$W/driver.log
DB=$(pw_free_port)
SPORT=$(pw_free_port)
STATS0=$(cat /proc/sys/kernel/bpf_stats_enabled)
mkdir -p "$CG/a" "$CG/b" "$CG/c" "$CG/self"
: >"$EVENTS"

show_cleanup() {
	[[ -n ${DRV_PID:-} ]] && kill "$DRV_PID" 2>/dev/null
	pw_cleanup
	sleep 0.2
	echo "$STATS0" >/proc/sys/kernel/bpf_stats_enabled
	local d p
	for d in a b c self; do
		[[ -d $CG/$d ]] || continue
		while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$CG/$d/cgroup.procs"
		rmdir "$CG/$d" 2>/dev/null
	done
	bpf_cleanup
	rm -rf "$W"
}
trap show_cleanup EXIT

# The driver: what the Makefile's rule for it would build, built here when it has not been.
DRIVER=$BUILD/tests/show_driver
if [[ ! -x $DRIVER || $here/show_driver.c -nt $DRIVER || $BUILD/libpgward.a -nt $DRIVER ]]; then
	mkdir -p "$BUILD/tests"
	check "build tests/bpf/show_driver.c against $BUILD/libpgward.a" \
		cc -std=gnu11 -O2 -g -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
		-D_GNU_SOURCE -I"$top/include" -I"$BUILD" -pthread -o "$DRIVER" "$here/show_driver.c" \
		"$BUILD/libpgward.a" -lbpf -lelf -lz -lssl -lcrypto -ljansson -lpg_query -ljwt
fi
[[ -x $DRIVER ]] || { finish; exit 1; }

cat >"$CONF" <<EOF
{
  "listen": [{"host": "127.0.0.1", "port": $(pw_free_port)}],
  "upstreams": {"db": {"host": "127.0.0.2", "port": $DB, "user": "postgres", "sslmode": "disable"}},
  "redirect": {"cgroups": ["$CG/a"], "ports": [$DB], "fail_mode": "closed", "fastpath": false,
               "heartbeat_timeout_seconds": 1, "pin_path": "$PIN", "overrides": "$OVFILE",
               "listen4": "127.0.0.1", "listen4_port": $SPORT,
               "deny": [{"net": "127.0.0.3/32"}]},
  "identities": [{"name": "agent", "match": {"cgroup": "/$CGNAME/*"}, "auth": "trust",
                  "rules": [{"action": "allow"}]}]
}
EOF

# the enforcer's listener: accepts and holds what is steered to it
python3 -c '
import socket, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(64)
print("ready", flush=True)
held = []
while True:
    held.append(l.accept()[0])' "$SPORT" >"$W/listener.out" 2>&1 &
PW_PIDS+=($!)

# agent SUB ADDR SECONDS OUT: python3 in $CG/SUB dials ADDR:$DB and holds the connection
agent() {
	sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG/$1" python3 -c '
import socket, sys, time
s = socket.socket()
try:
    s.connect((sys.argv[1], int(sys.argv[2])))
except OSError as e:
    print("refused" if e.errno == 111 else "errno %d" % e.errno, flush=True)
    sys.exit(0)
print("connected %s:%d" % s.getpeername(), flush=True)
time.sleep(float(sys.argv[3]))' "$2" "$DB" "$3" >"$4" 2>&1 &
	AGENT_PID=$!
	PW_PIDS+=($AGENT_PID)
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s $4 ]] && return 0
		sleep 0.1
	done
	return 1
}

# the driver, as a coprocess living in $CG/self
coproc DRV { sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$CG/self" \
	"$DRIVER" "$CONF" "$EVENTS" 2>"$LOG"; }
DRV_PID=$DRV_PID
OUT=
drv() { # one command; its answer in $OUT
	echo "$*" >&"${DRV[1]}"
	IFS= read -r -t 60 OUT <&"${DRV[0]}" || OUT='{"ok": false, "error": "the driver did not answer"}'
}
# jcheck NAME PYEXPR: PYEXPR holds for r, the last answer parsed (res: its result), with this
# script's CGNAME, CG, PIN, DB, SPORT and OVFILE as strings
jcheck() {
	check "$1" env OUT="$OUT" CGNAME="$CGNAME" CG="$CG" PIN="$PIN" DB="$DB" SPORT="$SPORT" \
		OVFILE="$OVFILE" python3 -c '
import calendar, json, os, re, sys, time
E = os.environ
CGNAME, CG, PIN, DB, SPORT, OVFILE = (E[k] for k in ("CGNAME", "CG", "PIN", "DB", "SPORT", "OVFILE"))
r = json.loads(E["OUT"])
res = r.get("result")
def by(key, val):
    return [x for x in res if x.get(key) == val]
ok = eval(sys.argv[1])
if not ok:
    print(json.dumps(r)[:1500], file=sys.stderr)
sys.exit(0 if ok else 1)' "$2"
}
ino() { stat -c %i "$1"; }
NOT_LOADED='no eBPF programs are loaded (no \"redirect\" section)'

# 1. before start: every view says the redirect is not loaded
for c in progs maps cgroups "dump conns" "add $CG/b" "del $CG/a"; do
	drv "$c"
	jcheck "not started: $c fails cleanly" "not r['ok'] and r['error'] == 'no eBPF programs are loaded (no \"redirect\" section)'"
done

drv start
jcheck "start: the redirect loads ($OUT)" "r['ok']"
check "listener ready" pw_wait_log "$W/listener.out" ready
DRV_CGPID=$(cat "$CG/self/cgroup.procs" | head -1)

# 2. prog show
drv progs
jcheck "prog show: every program, each with its fields" \
	"r['ok'] and len(res) >= 8 and all(set(p) == {'id','name','type','attach','cgroup','tag','loaded_at','pinned','run_count','run_time_ns'} for p in res)"
jcheck "prog show: pw_connect4 as bpftool's grammar says it" \
	"[(p['type'], p['attach'], p['cgroup']) for p in by('name', 'pw_connect4')] == [('cgroup_sock_addr', 'cgroup/connect4', '/')]"
jcheck "prog show: sockops, getpeername, bind attached to the root; sk_msg loaded, not attached (fastpath off)" \
	"by('name','pw_sockops')[0]['attach'] == 'sockops' and by('name','pw_sockops')[0]['type'] == 'sock_ops' and by('name','pw_getpeername6')[0]['attach'] == 'cgroup/getpeername6' and by('name','pw_bind4')[0]['cgroup'] == '/' and by('name','pw_sk_msg')[0]['attach'] is None and by('name','pw_sk_msg')[0]['pinned'] is None"
jcheck "prog show: tag is 16 hex digits, loaded_at RFC 3339 UTC within a minute" \
	"all(re.fullmatch('[0-9a-f]{16}', p['tag']) and re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z', p['loaded_at']) and abs(calendar.timegm(time.strptime(p['loaded_at'][:19], '%Y-%m-%dT%H:%M:%S')) - time.time()) < 60 for p in res)"
jcheck "prog show: each link pinned under \$PIN/links" \
	"all(os.path.exists(p['pinned']) and p['pinned'].startswith(PIN + '/links/' + p['name'] + '-') for p in res if p['attach'] and p['name'] != 'pw_sk_msg')"
jcheck "prog show: run_count and run_time_ns null while kernel.bpf_stats_enabled is 0" \
	"$STATS0 != 0 or all(p['run_count'] is None and p['run_time_ns'] is None for p in res)"
C4=$(env OUT="$OUT" python3 -c 'import json,os; print([p for p in json.loads(os.environ["OUT"])["result"] if p["name"] == "pw_connect4"][0]["id"])')
C4TAG=$(env OUT="$OUT" python3 -c 'import json,os; print([p for p in json.loads(os.environ["OUT"])["result"] if p["name"] == "pw_connect4"][0]["tag"])')
check "prog show: bpftool sees program $C4 as pw_connect4, tag $C4TAG" \
	bash -c "bpftool -j prog show id $C4 | python3 -c 'import json,sys; p=json.load(sys.stdin); sys.exit(0 if p[\"name\"] == \"pw_connect4\" and p[\"tag\"] == \"$C4TAG\" else 1)'"

# 3. map show
drv maps
jcheck "map show: the 12 maps, each with its fields" \
	"r['ok'] and sorted(m['name'] for m in res) == sorted(['pw_config','pw_scope','pw_scope_uid','pw_deny','pw_ports','pw_dsts','pw_sk_info','pw_conns','pw_events','pw_counters','pw_unix_own','pw_sockhash']) and all(set(m) == {'id','name','type','key_size','value_size','max_entries','entries','pinned'} for m in res)"
jcheck "map show: pw_conns an lru_hash of 65536 tuples, empty; pw_scope holds one cgroup" \
	"[(m['type'], m['key_size'], m['max_entries'], m['entries']) for m in by('name','pw_conns')] == [('lru_hash', 48, 65536, 0)] and by('name','pw_scope')[0]['entries'] == 1 and by('name','pw_ports')[0]['entries'] == 1"
jcheck "map show: entries null for arrays, the ring and socket storage" \
	"all(m['entries'] is None for m in res if m['type'] in ('array','percpu_array','ringbuf','sk_storage')) and by('name','pw_events')[0]['type'] == 'ringbuf'"
jcheck "map show: pinned at \$PIN/maps/NAME" \
	"all(m['pinned'] == PIN + '/maps/' + m['name'] and os.path.exists(m['pinned']) for m in res)"
CONNS_ID=$(env OUT="$OUT" python3 -c 'import json,os; print([m for m in json.loads(os.environ["OUT"])["result"] if m["name"] == "pw_conns"][0]["id"])')
check "map show: bpftool sees map $CONNS_ID as pw_conns" \
	bash -c "bpftool -j map show id $CONNS_ID | python3 -c 'import json,sys; m=json.load(sys.stdin); sys.exit(0 if m[\"name\"] == \"pw_conns\" and m[\"type\"] == \"lru_hash\" else 1)'"

# 4. map dump of the configuration's maps
drv dump config
jcheck "dump pw_config: decoded (fail mode, listener, heartbeat alive, enforcer pid)" \
	"r['ok'] and len(res) == 1 and res[0]['fail_mode'] == 'closed' and res[0]['listen4'] == '127.0.0.1:' + SPORT and res[0]['alive'] is True and res[0]['abi_version'] >= 1 and res[0]['heartbeat_timeout_ms'] == 1000 and res[0]['enforcer_pid'] == $DRV_CGPID and res[0]['fastpath'] is False"
drv dump ports
jcheck "dump ports (no prefix): [{port: $DB}]" "r['ok'] and res == [{'port': int(DB)}]"
drv dump pw_ports
jcheck "dump pw_ports: the same" "r['ok'] and res == [{'port': int(DB)}]"
drv dump scope
jcheck "dump pw_scope: the cgroup's id and path" \
	"r['ok'] and res == [{'cgroup_id': $(ino "$CG/a"), 'cgroup': '/' + CGNAME + '/a'}]"
drv dump deny
jcheck "dump pw_deny: 127.0.0.3/32, every port" "r['ok'] and res == [{'net': '127.0.0.3/32', 'port': None}]"
for m in scope_uid dsts unix_own sockhash; do
	drv dump "$m"
	jcheck "dump $m: empty in this configuration" "r['ok'] and res == []"
done
drv dump sk_info
jcheck "dump pw_sk_info: cannot be iterated, and says so" "not r['ok'] and r['rc'] == -1 and 'cannot be iterated' in r['error']"
drv dump pw_events
jcheck "dump pw_events: a ring buffer, not dumpable" "not r['ok'] and r['rc'] == -1 and 'ring buffer' in r['error']"
drv dump pw_nope
jcheck "dump of an unknown map: -2, naming the maps there are" \
	"not r['ok'] and r['rc'] == -2 and 'pw_nope' in r['error'] and all(n in r['error'] for n in ('pw_conns', 'pw_counters', 'pw_sockhash'))"

# 5. a steered connection: the tuple map decoded, a redirect event; a denied one
echo 1 >/proc/sys/kernel/bpf_stats_enabled
check "an agent in $CGNAME/a dials 127.0.0.2:$DB and is steered" agent a 127.0.0.2 30 "$W/agent1.out"
A1=$AGENT_PID
check "the agent sees the address it dialled" grep -qx "connected 127.0.0.2:$DB" "$W/agent1.out"
drv dump conns
jcheck "dump pw_conns: client, enforcer, dialled as ip:port; the agent's pid, uid, comm, cgroup" \
	"r['ok'] and len(res) == 1 and res[0]['client'].startswith('127.0.0.1:') and res[0]['enforcer'] == '127.0.0.1:' + SPORT and res[0]['dialled'] == '127.0.0.2:' + DB and res[0]['pid'] == $A1 and res[0]['tid'] == $A1 and res[0]['uid'] == 0 and res[0]['gid'] == 0 and res[0]['comm'] == 'python3' and res[0]['cgroup'] == '/' + CGNAME + '/a' and res[0]['cgroup_id'] == $(ino "$CG/a")"
jcheck "dump pw_conns: netns, exe, age and ancestry" \
	"res[0]['netns'] > 0 and 'python3' in (res[0]['exe'] or '') and 0 <= res[0]['age_ms'] < 60000 and len(res[0]['ancestry']) >= 1 and all(set(a) == {'pid','comm','exe','execd'} for a in res[0]['ancestry'])"
drv progs
jcheck "prog show with kernel.bpf_stats_enabled=1: pw_connect4 ran, and counts it" \
	"by('name','pw_connect4')[0]['run_count'] >= 1 and by('name','pw_connect4')[0]['run_time_ns'] > 0"
echo "$STATS0" >/proc/sys/kernel/bpf_stats_enabled
check "an agent dialling the denied 127.0.0.3 is refused" agent a 127.0.0.3 0 "$W/agent2.out"
A2=$AGENT_PID
check "  ... with ECONNREFUSED" grep -qx refused "$W/agent2.out"
check "event pipe: a redirect and a refusal were written" pw_wait_log "$EVENTS" connect_refused
OUT=$(python3 -c 'import json,sys; print(json.dumps({"ok": True, "result": [json.loads(l) for l in open(sys.argv[1])]}))' "$EVENTS")
jcheck "event pipe: every line has ts, type, reason, kernel" \
	"all(set(e) == {'ts','type','reason','kernel'} and re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z', e['ts']) for e in res)"
jcheck "event pipe: the redirect, with the audit trail's kernel object" \
	"[(e['reason'], e['kernel']['pid'], e['kernel']['uid'], e['kernel']['comm'], e['kernel']['cgroup'], e['kernel']['dst']) for e in by('type','redirect')] == [(None, $A1, 0, 'python3', '/' + CGNAME + '/a', '127.0.0.2:' + DB)]"
jcheck "event pipe: connect_refused with reason denied_destination" \
	"[(e['reason'], e['kernel']['pid'], e['kernel']['dst']) for e in by('type','connect_refused')] == [('denied_destination', $A2, '127.0.0.3:' + DB)]"
drv dump counters
jcheck "dump pw_counters: summed over CPUs, by name" \
	"r['ok'] and [c['counter'] for c in res][:3] == ['redirects','skips','refusals'] and by('counter','redirects')[0]['value'] >= 1 and by('counter','denied')[0]['value'] >= 1 and len(res) == 11"

# 6. cgroups: show, add, del, and the override file
drv cgroups
jcheck "cgroup show: the configuration's cgroup" \
	"r['ok'] and res == [{'path': '/' + CGNAME + '/a', 'id': $(ino "$CG/a"), 'source': 'config', 'exists': True}]"
check "no override file before the first change" test ! -e "$OVDIR"
drv add "$CG/b"
jcheck "cgroup add $CGNAME/b" "r['ok']"
drv cgroups
jcheck "cgroup show: b in scope, from the runtime" \
	"by('path', '/' + CGNAME + '/b') == [{'path': '/' + CGNAME + '/b', 'id': $(ino "$CG/b"), 'source': 'runtime', 'exists': True}] and len(res) == 2"
check "the override file's directory was made 0700" test "$(stat -c %a "$OVDIR")" = 700
check "the override file says {add: [b], del: []}" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j == {"add": [sys.argv[2]], "del": []} else 1)' "$OVFILE" "$CG/b"
check "no temporary file left beside it" test "$(ls "$OVDIR")" = "$(basename "$OVFILE")"
drv dump scope
jcheck "dump pw_scope: both cgroups" "r['ok'] and sorted(e['cgroup'] for e in res) == ['/' + CGNAME + '/a', '/' + CGNAME + '/b']"
check "an agent in $CGNAME/b is steered now" agent b 127.0.0.2 0 "$W/agent3.out"
check "  ... and sees the dialled address" grep -qx "connected 127.0.0.2:$DB" "$W/agent3.out"
drv add "$CG/b"
jcheck "cgroup add b again: already in scope" "not r['ok'] and 'already in scope' in r['error']"
drv add "/$CGNAME/b"
jcheck "cgroup add /$CGNAME/b (below the mount): the same cgroup, already in scope" "not r['ok'] and 'already in scope' in r['error']"
drv add "$CG/self"
jcheck "cgroup add of pgwardd's own cgroup: refused" "not r['ok'] and 'holds pgwardd itself' in r['error']"
drv add "$CG"
jcheck "cgroup add of an ancestor of pgwardd's cgroup: refused" "not r['ok'] and 'holds pgwardd itself' in r['error']"
drv add "$CG/nope"
jcheck "cgroup add of a cgroup that does not exist: refused, naming it" "not r['ok'] and 'nope' in r['error']"
drv add "relative/path"
jcheck "cgroup add of a relative path: refused" "not r['ok'] and 'absolute' in r['error']"
drv add "/$CGNAME/../$CGNAME/b"
jcheck "cgroup add with ..: refused" "not r['ok'] and '..' in r['error']"
drv del "$CG/nope"
jcheck "cgroup del of one not in scope: refused" "not r['ok'] and 'not in scope' in r['error']"
drv del "$CG/a"
jcheck "cgroup del of the configuration's a" "r['ok']"
check "the override file says {add: [b], del: [a]}" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j == {"add": [sys.argv[2] + "/b"], "del": [sys.argv[2] + "/a"]} else 1)' "$OVFILE" "$CG"
drv del "/$CGNAME/b"
jcheck "cgroup del of the last one: refused (the scope must not be empty)" "not r['ok'] and 'last one' in r['error']"
drv dump scope
jcheck "dump pw_scope: b only" "res == [{'cgroup_id': $(ino "$CG/b"), 'cgroup': '/' + CGNAME + '/b'}]"

# 7. the file applies on top of the configuration at start and reload, and says so in the log
drv stop
drv progs
jcheck "stopped: prog show says nothing is loaded" "not r['ok'] and 'no eBPF programs are loaded' in r['error']"
drv start
jcheck "start again" "r['ok']"
check "start logs the override file and what it changed" \
	grep -q "applied the overrides of $OVFILE: added \"/$CGNAME/b\", removed \"/$CGNAME/a\"" "$LOG"
drv cgroups
jcheck "cgroup show after start: b (runtime), not a" \
	"r['ok'] and [(c['path'], c['source']) for c in res] == [('/' + CGNAME + '/b', 'runtime')]"
drv add "$CG/a"
jcheck "cgroup add a: back in scope as the configuration's" \
	"r['ok']"
drv cgroups
jcheck "  ... source config" "by('path', '/' + CGNAME + '/a')[0]['source'] == 'config'"
check "the override file says {add: [b], del: []}" python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j == {"add": [sys.argv[2]], "del": []} else 1)' "$OVFILE" "$CG/b"
drv add "$CG/c"
jcheck "cgroup add c" "r['ok']"
drv stop
rmdir "$CG/c"
drv start
jcheck "start with a cgroup of the file gone: not fatal" "r['ok']"
check "  ... warned and skipped, naming the file" grep -q "eBPF scope: $OVFILE adds \"$CG/c\": .*: skipped" "$LOG"
drv cgroups
jcheck "  ... cgroup show: a and b" "sorted(c['path'] for c in res) == ['/' + CGNAME + '/a', '/' + CGNAME + '/b']"
n0=$(grep -c "applied the overrides of $OVFILE" "$LOG")
drv reload
jcheck "reload" "r['ok']"
check "reload applies the file again and logs it" test "$(grep -c "applied the overrides of $OVFILE" "$LOG")" -gt "$n0"

# 8. an override file that cannot be used is ignored, never fatal, and never overwritten
cp "$OVFILE" "$W/ov.good"
echo '{"add": [' >"$OVFILE"
drv stop
drv start
jcheck "start with a broken override file: runs on the configuration alone" "r['ok']"
check "  ... warned" grep -q "the override file cannot be used ($OVFILE: " "$LOG"
drv cgroups
jcheck "  ... cgroup show: a only" "[c['path'] for c in res] == ['/' + CGNAME + '/a']"
drv add "$CG/b"
jcheck "  ... cgroup add refuses to overwrite it" "not r['ok'] and 'cannot be used' in r['error']"
check "  ... and the file is as it was" grep -qx '{"add": \[' "$OVFILE"
cp "$W/ov.good" "$OVFILE"
chmod 0666 "$OVFILE"
drv reload
check "an override file writable by others is not trusted" grep -q "writable by it alone" "$LOG"
chmod 0600 "$OVFILE"
drv reload
drv cgroups
jcheck "fixed, reload takes it again: a and b" "sorted(c['path'] for c in res) == ['/' + CGNAME + '/a', '/' + CGNAME + '/b']"

# 9. the views never interleave with start, update and stop
drv stress 15
jcheck "15 reloads and restarts while another thread reads every view: each answer whole or not loaded ($OUT)" \
	"r['ok'] and res['views'] > 0 and res['bad'] == 0"
drv progs
jcheck "and it still runs" "r['ok'] and len(res) >= 8"

echo quit >&"${DRV[1]}"
wait "$DRV_PID" 2>/dev/null
check "the driver quit cleanly" test $? -eq 0
DRV_PID=
finish
