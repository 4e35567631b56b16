#!/usr/bin/env bash
# The control plane end to end with the eBPF redirect, as root (docs/control.md,
# docs/approvals.md): a throwaway PostgreSQL, pgwardd with a "redirect" section (its own pin
# path, throwaway cgroups), a "control" socket and approvals; agents are psql processes run
# inside the scope cgroup as a chosen uid, dialling 127.0.0.x:5432 (where nothing listens), which
# the kernel steers into pgwardd; the agents' identity takes the throwaway cluster as its
# upstream. pgwardctl -j is checked field by field against live steered sessions: session
# show (the kernel object), prog show, map show, map dump, cgroup show/add/del with the
# override file across a restart, event pipe, approvals and the agent's uid, session kill.
# "Not steered" shows as ECONNREFUSED: nothing listens on 127.0.0.x:5432.
#
# Standalone: BUILD=build-h5 bash tests/bpf/control.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
PY=/usr/bin/python3
# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=../integration/lib.sh
source "$top/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"
unset PGOPTIONS PGSERVICE PGWARD_CONTROL_SOCKET

bpf_setup ctltest # root or a loud skip; $CG, $CGNAME, $CGROOT, $PIN; trap bpf_cleanup
for f in "$BUILD/pgwardd" "$CTL"; do
	[[ -x $f ]] || { echo "not ok - $f is missing (make BUILD=... all)"; echo "1..1"; exit 1; }
done
if ! id daemon >/dev/null || ! id bin >/dev/null; then echo "not ok - the users daemon and bin are needed"; echo "1..1"; exit 1; fi

CG2NAME=$CGNAME-b # a second cgroup, outside the configured one (not in scope below it)
CG2=$CGROOT/$CG2NAME
mkdir -p "$CG2"
W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-ctltest.XXXXXX")
chmod 755 "$W"
CONF=$W/pgwardd.json
LOG=$W/pgwardd.log
SOCK=$W/control.sock
OVFILE=$W/state/cgroup-overrides.json
BGPIDS=()
CONF_OK=

ctl_cleanup() {
	local p d
	for p in "${BGPIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
	pw_cleanup
	for p in "${PW_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[[ -n $CONF_OK ]] && "$BUILD/pgwardd" --uninstall --config "$CONF" >/dev/null 2>&1
	sleep 0.2
	for d in "$CG2" "$CG"; do
		[[ -d $d ]] || continue
		while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$d/cgroup.procs"
	done
	rmdir "$CG2" 2>/dev/null
	bpf_cleanup
	rm -rf "$W"
}
trap ctl_cleanup EXIT

PGTMP_QUIET=1 pgtmp_start ctltest >/dev/null || { echo "not ok - cluster did not start"; echo "1..1"; exit 1; }
# (pgtmp_start chained its own stop before ctl_cleanup on EXIT, INT and TERM)
PSQL=$PGTMP_PGBIN/psql
PSQL_EXE=$(readlink -f "$PSQL")
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
pgtmp_psql -q -c "CREATE TABLE ctl_t (id int PRIMARY KEY); INSERT INTO ctl_t SELECT generate_series(1, 5)" >/dev/null
rows() { pgtmp_psql -At -c "SELECT count(*) FROM ctl_t"; }
check "no server listens on port 5432 (so that a connect that is not steered is refused)" \
	bash -c "! ss -Hltn 'sport = :5432' | grep -q ."

cat >"$CONF" <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {
    "db": {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
           "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}
  },
  "redirect": {"cgroups": ["$CG"], "ports": [5432], "fail_mode": "closed", "fastpath": false,
               "heartbeat_timeout_seconds": 1, "pin_path": "$PIN", "overrides": "$OVFILE",
               "listen4": "127.0.0.1", "listen4_port": $SPORT, "listen6": ""},
  "control": {"socket": "$SOCK", "mode": "0666", "readers": ["daemon"], "operators": ["bin"]},
  "approvals": {"timeout_seconds": 120},
  "identities": [
    {"name": "agent", "match": {"cgroup": "/$CGNAME*"}, "auth": "trust", "upstream": "db",
     "rules": [{"name": "deletes need a person", "action": "approve", "class": ["delete"]},
               {"name": "the rest", "action": "allow"}]}
  ]
}
EOF
check "the pin path is this test's own, not the default" bash -c "[[ '$PIN' == /sys/fs/bpf/pgward-ctltest-* ]]"
check "pgwardd starts with the redirect and the control socket" pw_start_pgwardd "$CONF" "$LOG"
[[ -S $SOCK ]] || {
	sed 's/^/#   /' "$LOG"
	finish
	exit 1
}
CONF_OK=1
check "the redirect is pinned at $PIN" test -d "$PIN"

J() { "$CTL" -s "$SOCK" -j "$@"; }
as() { # as USER CMD...: run as that user with its own groups
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"
}
# jc NAME FILE PYEXPR [WHY]: FILE's JSON (d) satisfies PYEXPR; E: the environment; by(key, val)
# picks the entries of a list d with that value; on failure, WHY (an expression) is printed
# before the JSON
jc() {
	check "$1" env CGNAME="$CGNAME" CG2NAME="$CG2NAME" CG="$CG" CG2="$CG2" PIN="$PIN" \
		OVFILE="$OVFILE" PSQL_EXE="$PSQL_EXE" W="$W" $PY -c '
import json, os, re, sys
E = os.environ
raw = open(sys.argv[1]).read()
try:
    d = json.loads(raw)
except ValueError as e:
    print("not JSON (%s): %r" % (e, raw[:1500]), file=sys.stderr)
    sys.exit(1)
def by(key, val, l=None):
    return [x for x in (d if l is None else l) if isinstance(x, dict) and x.get(key) == val]
try:
    ok = eval("(" + sys.argv[2] + "\n)")
except Exception as e:
    ok = False
    print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
if not ok and len(sys.argv) > 3:
    try:
        print("%s" % (eval("(" + sys.argv[3] + "\n)"),), file=sys.stderr)
    except Exception as e:
        print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
if not ok:
    print(raw[:1800], file=sys.stderr)
sys.exit(0 if ok else 1)' "${@:2}"
}
# jsonl FILE: the JSON lines of FILE as one JSON array into FILE.json
jsonl() { $PY -c 'import json,sys; print(json.dumps([json.loads(l) for l in open(sys.argv[1]) if l.strip()]))' "$1" >"$1.json"; }

# agent NAME CGDIR UID HOST SQL...: psql in CGDIR as UID dialling HOST:5432, in the background.
# The shell that starts it (bash, $W/NAME.sh holds its pid) is the psql's parent; $W/NAME.pid
# holds psql's pid, $W/NAME.out its output, $W/NAME.rc its exit status once it ended.
cat >"$W/agent.sh" <<EOF
#!/bin/bash
name=\$1 cg=\$2 uid=\$3 host=\$4
shift 4
echo \$\$ >"\$cg/cgroup.procs" || exit 97
echo \$\$ >"$W/\$name.sh"
setpriv --reuid="\$uid" --regid="\$(id -g "\$uid")" --clear-groups "$PSQL" -X -v VERBOSITY=verbose \\
	"host=\$host port=5432 user=postgres dbname=postgres sslmode=disable connect_timeout=10 application_name=\$name" \\
	"\$@" >"$W/\$name.out" 2>&1 &
echo \$! >"$W/\$name.pid"
wait \$!
echo \$? >"$W/\$name.rc"
EOF
chmod 755 "$W/agent.sh"
NCONNECT=0 # steered connects made so far
agent() {
	local name=$1
	rm -f "$W/$name".{sh,pid,out,rc}
	"$W/agent.sh" "$@" &
	AGENT_JOB=$!
	BGPIDS+=("$AGENT_JOB")
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s $W/$name.pid ]] && break
		sleep 0.05
	done
	APID=$(cat "$W/$name.pid" 2>/dev/null)
	ASH=$(cat "$W/$name.sh" 2>/dev/null)
}
# agent_wait NAME: waits (30 s at most) for the agent to end
agent_wait() {
	local i
	for ((i = 0; i < 300; i++)); do
		[[ -s $W/$1.rc ]] && return 0
		[[ -s $W/$1.pid ]] || return 1 # it never started
		sleep 0.1
	done
	return 1
}
# session_of PID: waits until pgwardd shows a session of that kernel pid; its id on stdout
session_of() {
	local i id
	for ((i = 0; i < 100; i++)); do
		id=$(J session show 2>/dev/null | $PY -c 'import json,sys
for s in json.load(sys.stdin):
    if (s.get("kernel") or {}).get("pid") == int(sys.argv[1]) and s.get("state") != "opening": print(s["id"]); break' "$1" 2>/dev/null)
		[[ -n $id ]] && { echo "$id"; return 0; }
		sleep 0.1
	done
	return 1
}

# a connect from CGDIR to HOST:5432 as uid 1, into $SOD: "steered" (pgwardd answered SELECT 1)
# or "direct" (nothing listens there: Connection refused)
steered_or_direct() { # NAME CGDIR HOST
	agent "$1" "$2" 1 "$3" -Atc "SELECT 1"
	agent_wait "$1" || { SOD=timeout; return; }
	if [[ $(cat "$W/$1.out") == 1 ]]; then
		NCONNECT=$((NCONNECT + 1))
		SOD=steered
	elif grep -q 'Connection refused' "$W/$1.out"; then
		SOD=direct
	else
		SOD="other: $(head -3 "$W/$1.out" | tr '\n' ' ')"
	fi
}

# --- the event pipe, listening before the first agent connects ---------------------------------
J event pipe >"$W/events.jsonl" 2>"$W/events.err" &
EVPIPE=$!
BGPIDS+=("$EVPIPE")
# (steered probes until the first line arrives: from then on the subscription is in place)
for i in $(seq 10); do
	sleep 0.2
	steered_or_direct "probe$i" "$CG" 127.0.0.10
	[[ -s $W/events.jsonl ]] && break
done
check "event pipe: the stream is open (pgwardctl still runs)" kill -0 "$EVPIPE"
check "event pipe: a steered probe's line arrived ($SOD)" test -s "$W/events.jsonl"

# --- session show: a steered agent (uid 1, daemon) running a statement ----------------------------
agent show "$CG" 1 127.0.0.2 -c "SELECT pg_sleep(120)"
SHOW_PID=$APID SHOW_SH=$ASH
NCONNECT=$((NCONNECT + 1))
SHOW_ID=$(session_of "$SHOW_PID")
check "a steered agent (psql $SHOW_PID as uid 1 in /$CGNAME, dialling 127.0.0.2:5432) has a session in pgwardd" \
	test -n "$SHOW_ID"
sleep 0.3
J session show >"$W/ss.json" 2>"$W/ss.err"
check "session show -j: exit 0" test $? = 0
export SHOW_PID SHOW_SH SHOW_ID
jc "session show: the agent's session has every documented field" "$W/ss.json" '
[set(s) for s in by("id", int(E["SHOW_ID"]))] == [{"id","worker","identity","matched","auth","user","database",
  "application_name","client","steered","upstream","role","kernel","state","statement","approval",
  "started","statements","bytes_in","bytes_out"}]'
jc "session show: steered true, identity agent, matched by the cgroup glob /$CGNAME*, auth trust" "$W/ss.json" '
[(s["steered"], s["identity"], s["matched"], s["auth"]) for s in by("id", int(E["SHOW_ID"]))]
  == [(True, "agent", {"cgroup": "/" + E["CGNAME"] + "*", "auth": "trust"}, "trust")]'
jc "session show: state active, its statement, application_name, user, database, client on loopback" "$W/ss.json" '
[(s["state"], s["statement"]["text"], s["application_name"], s["user"], s["database"], s["client"].startswith("127.0.0.1:"), s["approval"])
 for s in by("id", int(E["SHOW_ID"]))] == [("active", "SELECT pg_sleep(120)", "show", "postgres", "postgres", True, None)]'
jc "session show: upstream db at the cluster's address" "$W/ss.json" '
by("id", int(E["SHOW_ID"]))[0]["upstream"]["name"] == "db" and by("id", int(E["SHOW_ID"]))[0]["upstream"]["address"] == "127.0.0.1:'"$PGTMP_PORT"'"'
jc "session show: kernel object has every documented field" "$W/ss.json" '
set(by("id", int(E["SHOW_ID"]))[0]["kernel"]) == {"pid","tid","uid","gid","comm","exe","exe_verified","cgroup",
  "cgroup_id","netns_cookie","dst","ancestors"}'
jc "session show: kernel.pid is the psql's ($SHOW_PID), tid the same, uid 1 gid 1, comm psql" "$W/ss.json" '
[(k["pid"], k["tid"], k["uid"], k["gid"], k["comm"]) for k in [by("id", int(E["SHOW_ID"]))[0]["kernel"]]]
  == [(int(E["SHOW_PID"]), int(E["SHOW_PID"]), 1, 1, "psql")]'
jc "session show: kernel.exe is the psql binary ($PSQL_EXE), verified" "$W/ss.json" '
by("id", int(E["SHOW_ID"]))[0]["kernel"]["exe"] == E["PSQL_EXE"] and by("id", int(E["SHOW_ID"]))[0]["kernel"]["exe_verified"] is True'
jc "session show: kernel.cgroup is /$CGNAME (below the mount), cgroup_id its inode" "$W/ss.json" '
by("id", int(E["SHOW_ID"]))[0]["kernel"]["cgroup"] == "/" + E["CGNAME"] and by("id", int(E["SHOW_ID"]))[0]["kernel"]["cgroup_id"] == '"$(stat -c %i "$CG")"
jc "session show: kernel.dst is the dialled 127.0.0.2:5432" "$W/ss.json" '
by("id", int(E["SHOW_ID"]))[0]["kernel"]["dst"] == "127.0.0.2:5432"'
jc "session show: kernel.ancestors non-empty, the starting shell ($SHOW_SH, /usr/bin/bash) among them, each {pid, comm, exe, execd}" "$W/ss.json" '
len(by("id", int(E["SHOW_ID"]))[0]["kernel"]["ancestors"]) >= 1 and
[a["exe"] for a in by("pid", int(E["SHOW_SH"]), by("id", int(E["SHOW_ID"]))[0]["kernel"]["ancestors"])] == [os.path.realpath("/bin/bash")] and
all(set(a) == {"pid","comm","exe","execd"} for a in by("id", int(E["SHOW_ID"]))[0]["kernel"]["ancestors"])'
jc "session show: netns_cookie a number, started RFC 3339 UTC with microseconds" "$W/ss.json" '
isinstance(by("id", int(E["SHOW_ID"]))[0]["kernel"]["netns_cookie"], int) and
re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", by("id", int(E["SHOW_ID"]))[0]["started"])'
J session show id "$SHOW_ID" >"$W/ss1.json" 2>&1
jc "session show id $SHOW_ID: that one only, steered" "$W/ss1.json" 'len(d) == 1 and d[0]["id"] == int(E["SHOW_ID"]) and d[0]["steered"] is True'
J session show identity agent >"$W/ss2.json" 2>&1
jc "session show identity agent: the agent's session among them" "$W/ss2.json" 'len(by("id", int(E["SHOW_ID"]))) == 1 and all(s["identity"] == "agent" for s in d)'
"$CTL" -s "$SOCK" session show >"$W/ss.txt" 2>&1
check "session show (plain): exit 0" test $? = 0
check "session show (plain): the agent's pid $SHOW_PID and its cgroup /$CGNAME" \
	bash -c "grep -Eq '^[[:space:]]*pid $SHOW_PID( |\$)' '$W/ss.txt' && grep -q 'cgroup /$CGNAME\\b' '$W/ss.txt' || { cat '$W/ss.txt' >&2; false; }"
check "session show (plain): the dialled address and the identity" \
	bash -c "grep -q '127.0.0.2:5432' '$W/ss.txt' && grep -q '^$SHOW_ID: identity agent' '$W/ss.txt' || { cat '$W/ss.txt' >&2; false; }"

# --- the event pipe saw the redirect --------------------------------------------------------------
for _ in $(seq 30); do grep -q "\"pid\": *$SHOW_PID\\b" "$W/events.jsonl" && break; sleep 0.1; done
jsonl "$W/events.jsonl"
jc "event pipe -j: every line {ts, type, reason, kernel}, ts RFC 3339 UTC" "$W/events.jsonl.json" '
len(d) >= 1 and all(set(e) == {"ts","type","reason","kernel"} and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["ts"]) for e in d)'
jc "event pipe: a redirect line with the agent's pid $SHOW_PID, uid 1, the dialled 127.0.0.2:5432, /$CGNAME, reason null" "$W/events.jsonl.json" '
[(e["reason"], e["kernel"]["uid"], e["kernel"]["dst"], e["kernel"]["cgroup"], e["kernel"]["comm"]) for e in by("type", "redirect") if e["kernel"]["pid"] == int(E["SHOW_PID"])]
  == [(None, 1, "127.0.0.2:5432", "/" + E["CGNAME"], "psql")]'

# --- prog show ---------------------------------------------------------------------------------------
J prog show >"$W/prog.json" 2>&1
jc "prog show -j: the programs, each with the documented fields" "$W/prog.json" '
len(d) >= 8 and all(set(p) == {"id","name","type","attach","cgroup","tag","loaded_at","pinned","run_count","run_time_ns"} for p in d)'
jc "prog show -j: pw_connect4 is cgroup_sock_addr on cgroup/connect4 at /, pinned under $PIN" "$W/prog.json" '
[(p["type"], p["attach"], p["cgroup"], (p["pinned"] or "").startswith(E["PIN"] + "/")) for p in by("name", "pw_connect4")]
  == [("cgroup_sock_addr", "cgroup/connect4", "/", True)]'
jc "prog show -j: every attached program pinned under $PIN, nothing under the default /sys/fs/bpf/pgward/" "$W/prog.json" '
all(p["pinned"].startswith(E["PIN"] + "/") for p in d if p["pinned"]) and any(p["pinned"] for p in d)'
"$CTL" -s "$SOCK" prog show >"$W/prog.txt" 2>&1
check "prog show (plain): exit 0, names pw_connect4 and its attach point" \
	bash -c "grep -q pw_connect4 '$W/prog.txt' && grep -q 'connect4' '$W/prog.txt' && grep -q '$PIN' '$W/prog.txt' || { cat '$W/prog.txt' >&2; false; }"

# --- map show ----------------------------------------------------------------------------------------
J map show >"$W/map.json" 2>&1
jc "map show -j: the maps with the documented fields, pinned at \$PIN/maps/NAME" "$W/map.json" '
len(d) >= 10 and all(set(m) == {"id","name","type","key_size","value_size","max_entries","entries","pinned"} for m in d)
and all(m["pinned"] == E["PIN"] + "/maps/" + m["name"] for m in d)'
jc "map show -j: pw_conns an lru_hash (entries a number), pw_counters an array (entries null), pw_scope 1 entry" "$W/map.json" '
by("name", "pw_conns")[0]["type"] == "lru_hash" and isinstance(by("name", "pw_conns")[0]["entries"], int) and
by("name", "pw_counters")[0]["entries"] is None and by("name", "pw_scope")[0]["entries"] == 1'
"$CTL" -s "$SOCK" map show >"$W/map.txt" 2>&1
check "map show (plain): exit 0, pw_conns and pw_counters listed" \
	bash -c "grep -q pw_conns '$W/map.txt' && grep -q pw_counters '$W/map.txt' || { cat '$W/map.txt' >&2; false; }"

# --- map dump ----------------------------------------------------------------------------------------
SHOW_CLIENT=$($PY -c 'import json,sys; print([s["client"] for s in json.load(open(sys.argv[1])) if s["id"] == int(sys.argv[2])][0])' "$W/ss.json" "$SHOW_ID")
export SHOW_CLIENT
J map dump pw_conns >"$W/conns.json" 2>&1
check "map dump pw_conns -j: exit 0" test $? = 0
# pw_conns holds the records of steered connections pgwardd has not accepted yet: it takes a
# connection's record out of the map when it accepts it (docs/control.md), so an established
# session has none
jc "map dump pw_conns -j: no entry of the established steered session (pid $SHOW_PID): taken at accept" "$W/conns.json" '
by("pid", int(E["SHOW_PID"])) == []' \
	'"pw_conns holds %d entries of pid %s" % (len(by("pid", int(E["SHOW_PID"]))), E["SHOW_PID"])'
# A steered connection that no enforcer has accepted yet keeps its entry: an agent in a network
# namespace of its own (loopback only), whose steered connect lands in a listener there that
# never accepts (run outside the scope, so its bind of the steered port is allowed)
cat >"$W/hold.py" <<'PY'
import socket, sys, time
l = socket.socket()
l.bind(("127.0.0.1", int(sys.argv[1])))
l.listen(8)
print("ready", flush=True)
time.sleep(60)
PY
cat >"$W/conn.py" <<'PY'
import socket, sys, time
s = socket.socket()
s.connect((sys.argv[1], 5432))
print("%s:%d %s:%d" % (s.getsockname() + s.getpeername()), flush=True)
time.sleep(60)
PY
# shellcheck disable=SC2016 # expanded by the inner shell, from its arguments
unshare -n bash -c '
ip link set lo up || exit 1
/usr/bin/python3 "$1/hold.py" "$2" >"$1/hold.out" 2>&1 &
echo $! >"$1/hold.pid"
for i in $(seq 50); do grep -q ready "$1/hold.out" && break; sleep 0.1; done
bash -c "echo \$\$ >\"$3/cgroup.procs\" && exec setpriv --reuid=1 --regid=1 --clear-groups /usr/bin/python3 \"$1/conn.py\" 127.0.0.9" >"$1/conn.out" 2>&1 &
echo $! >"$1/conn.pid"
wait' sh "$W" "$SPORT" "$CG" &
BGPIDS+=($!)
for _ in $(seq 50); do [[ -s $W/conn.out ]] && break; sleep 0.1; done
HELD_PID=$(cat "$W/conn.pid" 2>/dev/null) HELD_CLIENT='' HELD_PEER=
read -r HELD_CLIENT HELD_PEER <"$W/conn.out"
BGPIDS+=("$HELD_PID" "$(cat "$W/hold.pid" 2>/dev/null)")
export HELD_PID HELD_CLIENT
check "an agent in a namespace of its own (uid 1, /$CGNAME) is steered to a listener that never accepts ($HELD_CLIENT -> $HELD_PEER)" \
	test "$HELD_PEER" = 127.0.0.9:5432
NCONNECT=$((NCONNECT + 1))
J map dump pw_conns >"$W/conns.json" 2>&1
jc "map dump pw_conns -j: that connection's entry decoded: client $HELD_CLIENT, pid $HELD_PID = tid, uid 1, gid 1, comm python3" "$W/conns.json" '
[(c["client"], c["tid"], c["uid"], c["gid"], c["comm"]) for c in by("pid", int(E["HELD_PID"]))]
  == [(E["HELD_CLIENT"], int(E["HELD_PID"]), 1, 1, "python3")]'
jc "  ... its cgroup path /$CGNAME and id, dialled 127.0.0.9:5432, enforcer 127.0.0.1:$SPORT, exe, age, ancestry" "$W/conns.json" '
[(c["cgroup"], c["cgroup_id"], c["dialled"], c["enforcer"], "python3" in (c["exe"] or ""), 0 <= c["age_ms"] < 60000, len(c["ancestry"]) >= 1)
 for c in by("pid", int(E["HELD_PID"]))]
  == [("/" + E["CGNAME"], '"$(stat -c %i "$CG")"', "127.0.0.9:5432", "127.0.0.1:'"$SPORT"'", True, True, True)]'
jc "  ... every entry has the documented fields (netns a number)" "$W/conns.json" '
len(d) >= 1 and all(set(c) == {"client","enforcer","netns","pid","tid","uid","gid","comm","exe","cgroup_id","cgroup","dialled","age_ms","ancestry"}
  and isinstance(c["netns"], int) for c in d)'
"$CTL" -s "$SOCK" map dump pw_conns >"$W/conns.txt" 2>&1
check "map dump pw_conns (plain): exit 0, the entry's client, pid, uid and cgroup" \
	bash -c "grep -q '$HELD_CLIENT' '$W/conns.txt' && grep -qw '$HELD_PID' '$W/conns.txt' && grep -q '/$CGNAME' '$W/conns.txt' || { cat '$W/conns.txt' >&2; false; }"
J map show >"$W/map.json" 2>&1
jc "map show -j: pw_conns counts it (entries >= 1)" "$W/map.json" 'by("name", "pw_conns")[0]["entries"] >= 1'
kill "$HELD_PID" "$(cat "$W/hold.pid")" 2>/dev/null
J map dump pw_counters >"$W/counters.json" 2>&1
jc "map dump pw_counters -j: {counter, value} by name, redirects >= $NCONNECT (the connects made)" "$W/counters.json" '
all(set(c) == {"counter","value"} for c in d) and by("counter", "redirects")[0]["value"] >= '"$NCONNECT"
"$CTL" -s "$SOCK" map dump pw_counters >"$W/counters.txt" 2>&1
check "map dump pw_counters (plain): exit 0, redirects counted" \
	bash -c "grep -Eq 'redirects[^0-9]*[1-9]' '$W/counters.txt' || { cat '$W/counters.txt' >&2; false; }"
J map dump nope >"$W/nope.json" 2>&1
rc=$?
check "map dump nope -j: exit 1 ($rc)" test "$rc" = 1
jc "map dump nope -j: {\"error\"} naming it and listing the maps there are" "$W/nope.json" '
set(d) >= {"error"} and "nope" in d["error"] and all(n in d["error"] for n in ("pw_conns", "pw_counters", "pw_scope"))'
"$CTL" -s "$SOCK" map dump nope >"$W/nope.txt" 2>&1
rc=$?
check "map dump nope (plain): exit 1 ($rc), the error lists the maps" \
	bash -c "test $rc = 1 && grep -q nope '$W/nope.txt' && grep -q pw_conns '$W/nope.txt' || { cat '$W/nope.txt' >&2; false; }"

# --- stats and identity show with the redirect loaded ------------------------------------------------
J stats >"$W/stats.json" 2>&1
jc "stats -j: the bpf section with every documented counter, redirects >= $NCONNECT, no refusal, no tuple miss" "$W/stats.json" '
isinstance(d["bpf"], dict) and set(d["bpf"]) >= {"redirects","refusals","bypasses","ringbuf_drops","tuple_misses","denied","binds","unix","fastpath_redirects","fastpath_fallbacks"}
and d["bpf"]["redirects"] >= '"$NCONNECT"' and d["bpf"]["refusals"] == 0 and d["bpf"]["tuple_misses"] == 0 and d["tuple_misses"] == 0'
jc "stats -j: the bpf section holds exactly the counters docs/control.md lists" "$W/stats.json" '
set(d["bpf"]) == {"redirects","skips","refusals","bypasses","ringbuf_drops","tuple_misses","denied","binds","unix","fastpath_redirects","fastpath_fallbacks"}' \
	'"not documented: %s; missing: %s" % (sorted(set(d["bpf"]) - {"redirects","skips","refusals","bypasses","ringbuf_drops","tuple_misses","denied","binds","unix","fastpath_redirects","fastpath_fallbacks"}), sorted({"redirects","skips","refusals","bypasses","ringbuf_drops","tuple_misses","denied","binds","unix","fastpath_redirects","fastpath_fallbacks"} - set(d["bpf"])))'
jc "stats -j: one live session, of identity agent" "$W/stats.json" 'd["sessions"]["live"] == 1 and d["by_identity"]["agent"]["sessions"] >= 1'
J identity show agent >"$W/id.json" 2>&1
jc "identity show agent: matched by the cgroup glob, upstream db, approvers none (any operator), one session" "$W/id.json" '
[(i["name"], i["match"], i["upstream"], i["approvers"], i["sessions"], i["approval_timeout_seconds"]) for i in d]
  == [("agent", {"cgroup": "/" + E["CGNAME"] + "*", "auth": "trust"}, "db", {"uids": [], "gids": []}, 1, 120)]'

# --- approvals: the agent's uid may not approve its own statement ----------------------------------
wait_pending() { # wait_pending N: until N requests are pending; the newest id on stdout
	local i
	for i in $(seq 100); do
		J approval list >"$W/al.json" 2>/dev/null
		if $PY -c "import json,sys; sys.exit(0 if len(json.load(open(sys.argv[1]))) == $1 else 1)" "$W/al.json" 2>/dev/null; then
			$PY -c 'import json,sys; L=json.load(open(sys.argv[1])); print(L[-1]["id"] if L else "")' "$W/al.json"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
agent del "$CG" 2 127.0.0.3 -c "DELETE FROM ctl_t WHERE id = 1"
DEL_PID=$APID
NCONNECT=$((NCONNECT + 1))
AID=$(wait_pending 1)
check "an agent running as uid 2 (bin) in the scope: its DELETE is held (request $AID)" test -n "$AID"
check "the DELETE did not run while held" test "$(rows)" = 5
export DEL_PID AID
J approval show "$AID" >"$W/ap.json" 2>&1
jc "approval show: pending, identity agent, the statement, by rule 1" "$W/ap.json" '
d["id"] == E["AID"] and d["state"] == "pending" and d["identity"] == "agent" and d["statement"]["text"] == "DELETE FROM ctl_t WHERE id = 1"
and d["statement"]["by"] == "rule" and d["statement"]["rule"] == 1 and d["statement"]["classes"] == ["delete"] and d["decided"] is None'
jc "approval show: the kernel object is the agent's (pid $DEL_PID, uid 2, cgroup /$CGNAME, dst 127.0.0.3:5432)" "$W/ap.json" '
isinstance(d["kernel"], dict) and (d["kernel"]["pid"], d["kernel"]["uid"], d["kernel"]["cgroup"], d["kernel"]["dst"])
  == (int(E["DEL_PID"]), 2, "/" + E["CGNAME"], "127.0.0.3:5432")'
J session show identity agent >"$W/ssd.json" 2>&1
jc "session show: the agent's session is held, naming request $AID" "$W/ssd.json" '
[(s["state"], s["approval"]) for s in d if (s["kernel"] or {}).get("pid") == int(E["DEL_PID"])] == [("held", E["AID"])]'
as daemon "$CTL" -s "$SOCK" -j approval approve "$AID" >"$W/out.json" 2>&1
rc=$?
check "a reader (daemon) may not approve: exit 4 ($rc)" bash -c "test $rc = 4 && grep -q 'may not run' '$W/out.json' || { cat '$W/out.json' >&2; false; }"
as bin "$CTL" -s "$SOCK" -j approval approve "$AID" >"$W/out.json" 2>&1
rc=$?
check "bin (uid 2, an operator) may not approve a request of a uid-2 agent: refused, \"same uid\" (exit $rc)" \
	bash -c "test $rc != 0 && grep -q 'same uid' '$W/out.json' || { cat '$W/out.json' >&2; false; }"
jc "  ... the refusal is an {\"error\"} naming uid 2 and the request" "$W/out.json" '"error" in d and "uid 2" in d["error"] and E["AID"] in d["error"]'
sleep 0.3
check "  ... and the DELETE did not run" test "$(rows)" = 5
J approval show "$AID" >"$W/ap2.json" 2>&1
jc "  ... the request is still pending" "$W/ap2.json" 'd["state"] == "pending" and d["decided"] is None'
J approval approve "$AID" >"$W/ap3.json" 2>&1
rc=$?
check "root approves: exit 0 ($rc)" test "$rc" = 0
jc "root approves: approved, by root, uid 0, scope once" "$W/ap3.json" '
d["state"] == "approved" and d["decided"]["by"] == "root" and d["decided"]["uid"] == 0 and d["decided"]["scope"] == "once"
and d["kernel"]["pid"] == int(E["DEL_PID"]) and d["kernel"]["uid"] == 2'
agent_wait del
check "the agent got its result (DELETE 1)" bash -c "grep -q '^DELETE 1' '$W/del.out' || { cat '$W/del.out' >&2; false; }"
check "the DELETE ran on the server (row 1 gone, 4 rows left)" \
	test "$(rows) $(pgtmp_psql -At -c 'SELECT count(*) FROM ctl_t WHERE id = 1')" = "4 0"

# --- session kill of a steered session ---------------------------------------------------------------
as bin "$CTL" -s "$SOCK" -j session kill id "$SHOW_ID" >"$W/kill.json" 2>&1
rc=$?
check "session kill id $SHOW_ID as bin (an operator): exit 0 ($rc)" test "$rc" = 0
jc "session kill -j: {id, killed: true}" "$W/kill.json" 'd == {"id": int(E["SHOW_ID"]), "killed": True}'
agent_wait show
check "the agent's psql reports 57P01, naming the session and the operator bin" \
	bash -c "grep -q '57P01: terminating connection due to administrator command (pgward: session $SHOW_ID killed by bin' '$W/show.out' || { cat '$W/show.out' >&2; false; }"
check "  ... and exits non-zero ($(cat "$W/show.rc" 2>/dev/null))" bash -c "test -s '$W/show.rc' && test \"\$(cat '$W/show.rc')\" != 0"
J session show id "$SHOW_ID" >"$W/gone.json" 2>&1
rc=$?
check "the killed session is gone (not_found, exit 1)" bash -c "test $rc = 1 && grep -q 'no session $SHOW_ID' '$W/gone.json'"

# --- cgroup show, add, del, the override file, a restart ---------------------------------------------
CG_INO=$(stat -c %i "$CG") CG2_INO=$(stat -c %i "$CG2")
export CG_INO CG2_INO
J cgroup show >"$W/cg.json" 2>&1
jc "cgroup show -j: the configuration's cgroup /$CGNAME, its id, source config, exists" "$W/cg.json" '
d == [{"path": "/" + E["CGNAME"], "id": int(E["CG_INO"]), "source": "config", "exists": True}]'
"$CTL" -s "$SOCK" cgroup show >"$W/cg.txt" 2>&1
check "cgroup show (plain): exit 0, /$CGNAME and config" \
	bash -c "grep -q '/$CGNAME' '$W/cg.txt' && grep -q config '$W/cg.txt' || { cat '$W/cg.txt' >&2; false; }"
check "no override file before the first change" test ! -e "$OVFILE"

steered_or_direct pre "$CG2" 127.0.0.4; r=$SOD
check "before cgroup add: an agent in /$CG2NAME is not steered ($r)" test "$r" = direct
as daemon "$CTL" -s "$SOCK" -j cgroup add "$CG2" >"$W/out.json" 2>&1
rc=$?
check "a reader (daemon) may not cgroup add: exit 4 ($rc), permission naming the command" \
	bash -c "test $rc = 4 && grep -q 'may not run' '$W/out.json' && grep -q 'cgroup add' '$W/out.json' || { cat '$W/out.json' >&2; false; }"
as daemon "$CTL" -s "$SOCK" cgroup add "$CG2" >"$W/out.txt" 2>&1
rc=$?
check "  ... plain too: exit 4 ($rc)" test "$rc" = 4
J cgroup show >"$W/cg.json" 2>&1
jc "  ... and the scope did not change" "$W/cg.json" '[c["path"] for c in d] == ["/" + E["CGNAME"]]'
check "  ... and no override file was written" test ! -e "$OVFILE"

as bin "$CTL" -s "$SOCK" -j cgroup add "$CG2" >"$W/add.json" 2>&1
rc=$?
check "cgroup add $CG2 as bin (an operator): exit 0 ($rc)" test "$rc" = 0
jc "cgroup add -j: the array after the change: /$CGNAME (config) and /$CG2NAME (runtime)" "$W/add.json" '
sorted((c["path"], c["id"], c["source"], c["exists"]) for c in d) ==
  sorted([("/" + E["CGNAME"], int(E["CG_INO"]), "config", True), ("/" + E["CG2NAME"], int(E["CG2_INO"]), "runtime", True)])'
jc "the override file holds the change {add: [$CG2], del: []}" "$OVFILE" 'd == {"add": [E["CG2"]], "del": []}'
agent added "$CG2" 1 127.0.0.5 -c "SELECT pg_sleep(60)"
ADD_PID=$APID
NCONNECT=$((NCONNECT + 1))
ADD_ID=$(session_of "$ADD_PID")
check "after cgroup add: an agent in /$CG2NAME is steered (session $ADD_ID)" test -n "$ADD_ID"
J session show id "${ADD_ID:-0}" >"$W/ssa.json" 2>&1
export ADD_PID
jc "  ... its session: steered, kernel.cgroup /$CG2NAME, pid $ADD_PID, dst 127.0.0.5:5432, matched /$CGNAME*" "$W/ssa.json" '
[(s["steered"], s["kernel"]["cgroup"], s["kernel"]["pid"], s["kernel"]["dst"], s["matched"]["cgroup"]) for s in d]
  == [(True, "/" + E["CG2NAME"], int(E["ADD_PID"]), "127.0.0.5:5432", "/" + E["CGNAME"] + "*")]'
J map dump pw_scope >"$W/scope.json" 2>&1
jc "map dump pw_scope: both cgroups" "$W/scope.json" 'sorted(e["cgroup"] for e in d) == sorted(["/" + E["CGNAME"], "/" + E["CG2NAME"]])'
"$CTL" -s "$SOCK" session kill id "${ADD_ID:-0}" >"$W/kill.txt" 2>&1
rc=$?
check "session kill (plain, as root): exit 0 ($rc), \"session $ADD_ID killed\"" \
	bash -c "test $rc = 0 && grep -qx 'session $ADD_ID killed' '$W/kill.txt' || { cat '$W/kill.txt' >&2; false; }"
agent_wait added
check "  ... the agent's psql reports 57P01 naming root" \
	bash -c "grep -q '57P01: terminating connection due to administrator command (pgward: session $ADD_ID killed by root' '$W/added.out' || { cat '$W/added.out' >&2; false; }"

J cgroup del "$CG" >"$W/del.json" 2>&1
rc=$?
check "cgroup del $CG (the configuration's): exit 0 ($rc)" test "$rc" = 0
jc "cgroup del -j: the array after the change: /$CG2NAME only" "$W/del.json" '[(c["path"], c["source"]) for c in d] == [("/" + E["CG2NAME"], "runtime")]'
steered_or_direct delcg "$CG" 127.0.0.6; r=$SOD
check "after cgroup del: an agent in /$CGNAME is no longer steered ($r)" test "$r" = direct
steered_or_direct delcg2 "$CG2" 127.0.0.6; r=$SOD
check "  ... while one in /$CG2NAME still is ($r)" test "$r" = steered
jc "the override file holds both changes {add: [$CG2], del: [$CG]}" "$OVFILE" 'd == {"add": [E["CG2"]], "del": [E["CG"]]}'

# a restart applies the override file on top of the configuration, and logs it
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "pgwardd stopped cleanly" test $? = 0
kill "$EVPIPE" 2>/dev/null
mv "$LOG" "$W/pgwardd.1.log"
check "pgwardd restarts" pw_start_pgwardd "$CONF" "$LOG"
check "the restart logs the override file and what it changed" \
	bash -c "grep -q 'applied the overrides of $OVFILE: added \"/$CG2NAME\", removed \"/$CGNAME\"' '$LOG' || { grep -i overrid '$LOG' >&2; false; }"
J cgroup show >"$W/cg.json" 2>&1
jc "cgroup show after the restart: /$CG2NAME (runtime) only" "$W/cg.json" '[(c["path"], c["source"], c["exists"]) for c in d] == [("/" + E["CG2NAME"], "runtime", True)]'
steered_or_direct rs1 "$CG" 127.0.0.7; r=$SOD
check "after the restart an agent in /$CGNAME is still not steered ($r)" test "$r" = direct
steered_or_direct rs2 "$CG2" 127.0.0.7; r=$SOD
check "after the restart an agent in /$CG2NAME is steered ($r)" test "$r" = steered

# back: the configuration's cgroup again, the runtime one removed
as bin "$CTL" -s "$SOCK" -j cgroup add "$CG" >"$W/add2.json" 2>&1
jc "cgroup add $CG again: back as the configuration's" "$W/add2.json" 'by("path", "/" + E["CGNAME"])[0]["source"] == "config" and len(d) == 2'
as bin "$CTL" -s "$SOCK" -j cgroup del "$CG2" >"$W/del2.json" 2>&1
rc=$?
jc "cgroup del $CG2 (exit $rc): /$CGNAME left" "$W/del2.json" '[(c["path"], c["source"]) for c in d] == [("/" + E["CGNAME"], "config")]'
steered_or_direct back1 "$CG2" 127.0.0.8; r=$SOD
check "after cgroup del: an agent in /$CG2NAME is no longer steered ($r)" test "$r" = direct
steered_or_direct back2 "$CG" 127.0.0.8; r=$SOD
check "  ... and one in /$CGNAME is steered again ($r)" test "$r" = steered
jc "the override file is empty again {add: [], del: []}" "$OVFILE" 'd == {"add": [], "del": []}'
J map dump pw_counters >"$W/counters.json" 2>&1
jc "map dump pw_counters: redirects >= $NCONNECT (every steered connect made)" "$W/counters.json" 'by("counter", "redirects")[0]["value"] >= '"$NCONNECT"

kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "pgwardd stopped cleanly" test $? = 0
check "the socket file is removed at stop" test ! -e "$SOCK"
check "pgwardd --uninstall --config removes this test's pins" \
	bash -c "'$BUILD/pgwardd' --uninstall --config '$CONF' && test ! -e '$PIN'"
finish
