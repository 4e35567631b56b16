#!/usr/bin/env bash
# Approvals shared by a fleet through a control database (docs/approvals.md, "Fleets";
# user/approval_db.c): one throwaway PostgreSQL 15 is both the agents' database and the control
# database; two pgwardd ("node-a", "node-b") share their approvals through it. An agent of
# node A is held; node B lists its request (from the database) and decides it: approve, deny;
# a plain SQL UPDATE of the row decides it too; a timeout and a client gone on A show in the
# row; a decided request cannot be decided again; the identity's approvers rule on B as on A.
# Every decision is checked where it matters: on the server (rows deleted or not) and in the
# agent's answer, not only in the row.
#
# Standalone: BUILD=build-t bash tests/integration/fleet.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"
PY=/usr/bin/python3

trap 'pw_cleanup' EXIT
unset PGOPTIONS PGSERVICE PGWARD_CONTROL_SOCKET
for f in "$BUILD/pgwardd" "$CTL"; do
	if [[ ! -x $f ]]; then
		echo "not ok - $f is missing (make BUILD=... all)"
		echo "1..1"
		exit 1
	fi
done
if ! id daemon >/dev/null || ! id bin >/dev/null; then
	echo "not ok - the users daemon and bin are needed"
	echo "1..1"
	exit 1
fi
PGTMP_QUIET=1 pgtmp_start fleet >/dev/null || {
	echo "not ok - throwaway cluster did not start"
	echo "1..1"
	exit 1
}
BGPIDS=()
W=$PGTMP_DIR/pgward
# FLEET_KEEP=DIR keeps the logs and outputs there (the cluster's directory goes at exit)
trap 'kill "${BGPIDS[@]}" 2>/dev/null; pw_cleanup; [[ -z ${FLEET_KEEP:-} ]] || cp -r "$W" "$FLEET_KEEP"; pgtmp_stop_all' EXIT
mkdir -p "$W"
chmod 755 "$W" "$PGTMP_DIR" 2>/dev/null
PORT_A=$(pw_free_port)
PORT_B=$(pw_free_port)
SOCK_A=$W/a.sock
SOCK_B=$W/b.sock
PSQL=$PGTMP_PGBIN/psql
conn() { echo "host=127.0.0.1 port=$1 user=$2 dbname=fleetdb sslmode=disable application_name=agent"; }
pgtmp_psql -q -c "CREATE DATABASE fleetdb" >/dev/null
pgtmp_psql -q -d fleetdb -c "CREATE TABLE orders (id int PRIMARY KEY, amount int);
  INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 9) g" >/dev/null
rows() { pgtmp_psql -At -d fleetdb -c "SELECT count(*) FROM orders"; }
has() { test "$(pgtmp_psql -At -d fleetdb -c "SELECT count(*) FROM orders WHERE id = $1")" = 1; }
# the control database: the upstream's default database ("postgres"), schema "pgward"
db() { pgtmp_psql -At -c "$1"; }
row_state() { db "SELECT state FROM pgward.approvals WHERE id = '$1'"; }

as() { # as USER CMD...: run as that user with its own groups
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"
}

write_cfg() { # write_cfg NODE PORT SOCKET
	cat >"$W/$1.json" <<JSON
{
  "workers": 2,
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $2}],
  "upstreams": {"main": {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                         "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}},
  "control": {"socket": "$3", "mode": "0666", "readers": ["daemon"],
              "operators": ["bin", "daemon"]},
  "approvals": {"timeout_seconds": 60, "node": "$1", "database": {"upstream": "main"}},
  "identities": [
    {"name": "writer", "match": {"user": "writer"}, "auth": "trust", "upstream": "main",
     "approvals": {"users": ["bin"]},
     "rules": [{"name": "deletes need a person", "action": "approve", "class": ["delete"],
                "relations": ["public.orders"]},
               {"name": "work", "action": "allow", "class": ["select", "transaction", "set"],
                "relations": ["public.*", "pg_catalog.*"], "functions": ["pg_catalog.*"]}]},
    {"name": "quick", "match": {"user": "quick"}, "auth": "trust", "upstream": "main",
     "approvals": {"users": ["bin"], "timeout_seconds": 2},
     "rules": [{"name": "deletes need a person", "action": "approve", "class": ["delete"],
                "relations": ["public.orders"]}]}
  ]
}
JSON
}
write_cfg node-a "$PORT_A" "$SOCK_A"
write_cfg node-b "$PORT_B" "$SOCK_B"

# both nodes start at the same moment on a database without the schema: the advisory lock
# makes one wait for the other, neither fails
runner=()
[[ -n ${PGWARD_VALGRIND:-} ]] && runner=(valgrind -q --error-exitcode=99 --leak-check=full)
"${runner[@]}" "$BUILD/pgwardd" --config "$W/node-a.json" >"$W/a.log" 2>&1 &
PID_A=$!
"${runner[@]}" "$BUILD/pgwardd" --config "$W/node-b.json" >"$W/b.log" 2>&1 &
PID_B=$!
PW_PIDS+=("$PID_A" "$PID_B")
if ! pw_wait_log "$W/a.log" 'pgwardd .* started (pid' 20 ||
	! pw_wait_log "$W/b.log" 'pgwardd .* started (pid' 20; then
	echo "not ok - the two pgwardd did not start"
	sed 's/^/#   a: /' "$W/a.log"
	sed 's/^/#   b: /' "$W/b.log"
	echo "1..1"
	exit 1
fi
check "two nodes started together on an empty control database: both up" \
	bash -c "kill -0 $PID_A && kill -0 $PID_B"
check "the schema is there: the table, its index, its two triggers" bash -c "
	test \"\$(PGPASSWORD=\$(cat $PGTMP_DIR/postgres.pw) $PSQL -X -At -h 127.0.0.1 -p $PGTMP_PORT -U postgres -d postgres -c \"
	  SELECT (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'pgward.approvals'::regclass AND NOT tgisinternal)
	      || ' ' || (SELECT count(*) FROM pg_indexes WHERE schemaname = 'pgward')\")\" = '2 2'"
check "both say so in their logs, with their node names" bash -c "
	grep -q 'shared through the control database .* as node \"node-a\"' '$W/a.log' &&
	grep -q 'shared through the control database .* as node \"node-b\"' '$W/b.log'"
check "their connections say pgward-approvals (a listener and, later, a control one each)" \
	test "$(db "SELECT count(*) >= 2 FROM pg_stat_activity WHERE application_name = 'pgward-approvals'")" = t

JA() { "$CTL" -s "$SOCK_A" -j "$@"; }
JB() { "$CTL" -s "$SOCK_B" -j "$@"; }
# pyj PYTHON-EXPRESSION: the JSON on stdin as d; the expression must hold
pyj() { $PY -c "import json,sys; d=json.load(sys.stdin); ok=($1); print(json.dumps(d)[:2000], file=sys.stderr) if not ok else None; sys.exit(0 if ok else 1)"; }
export PY
export -f pyj

# on_b_pending: until node B lists exactly one request of another node; prints its id
on_b_pending() {
	for _ in $(seq 100); do
		JB approval list >"$W/bl.json" 2>/dev/null
		if $PY -c "import json,sys; L=[r for r in json.load(open(sys.argv[1])) if r['node'] == 'node-a']; sys.exit(0 if len(L) == 1 else 1)" "$W/bl.json"; then
			$PY -c "import json,sys; print([r for r in json.load(open(sys.argv[1])) if r['node'] == 'node-a'][0]['id'])" "$W/bl.json"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
# wait_row ID STATE: until the row says so (5 s)
wait_row() {
	for _ in $(seq 50); do
		[[ $(row_state "$1") == "$2" ]] && return 0
		sleep 0.1
	done
	return 1
}
agent() { # agent NAME USER SQL: a psql of node A in the background (AGENT: its pid)
	"$PSQL" "$(conn "$PORT_A" "$2")" -X -c "$3" >"$W/$1.out" 2>&1 &
	AGENT=$!
	BGPIDS+=("$AGENT")
}

# --- approved on B -------------------------------------------------------------------------
agent a1 writer "DELETE FROM orders WHERE id = 1"
ID=$(on_b_pending)
check "an agent of node A is held; node B lists its request from the database" test -n "$ID"
check "its id names node A: node-a-<boot>-<n>" bash -c "[[ '$ID' == node-a-*-* ]]"
check "the DELETE did not run while held" has 1
$PY -c 'import json,sys; print(json.dumps([r for r in json.load(open(sys.argv[1])) if r["id"] == sys.argv[2]][0]))' "$W/bl.json" "$ID" >"$W/out.json"
check "B's list: approval show's object, pending, the statement, node-a" pyj "
d['id'] == '$ID' and d['state'] == 'pending' and d['node'] == 'node-a' and
d['identity'] == 'writer' and d['user'] == 'writer' and d['database'] == 'fleetdb' and
d['statement']['text'] == 'DELETE FROM orders WHERE id = 1' and d['decided'] is None and
d['created'].endswith('Z') and d['expires'] > d['created']" <"$W/out.json"
JB approval show "$ID" >"$W/out.json" 2>&1
check "approval show ID on B: from the database" pyj "d['id'] == '$ID' and d['state'] == 'pending'" <"$W/out.json"
JA approval list >"$W/out.json" 2>&1
check "A lists it as its own (once: A's list has no other node's rows)" \
	pyj "[r['id'] for r in d] == ['$ID']" <"$W/out.json"
as daemon "$CTL" -s "$SOCK_B" -j approval approve "$ID" >"$W/out.json" 2>&1
check "on B, daemon (uid 1, an operator) may not approve: writer's approvers are [bin]" \
	grep -q 'not an approver of identity writer' "$W/out.json"
JB approval approve "$ID" >"$W/out.json" 2>&1
check "on B, root is not an approver of writer either" grep -q 'not an approver of identity writer' "$W/out.json"
check "the refusals decided nothing (the row pending, the order there)" \
	test "$(row_state "$ID") $(has 1 && echo there)" = "pending there"
as bin "$CTL" -s "$SOCK_B" -j approval approve "$ID" >"$W/out.json" 2>&1
check "bin approves on B: approved, by bin (uid 2), scope once" pyj "
d['id'] == '$ID' and d['state'] == 'approved' and d['decided']['by'] == 'bin' and
d['decided']['uid'] == 2 and d['decided']['scope'] == 'once'" <"$W/out.json"
timeout 10 tail --pid="$AGENT" -f /dev/null
check "the agent on A got its result (DELETE 1)" grep -q '^DELETE 1' "$W/a1.out"
check "the row is deleted on the server" bash -c "! has 1"
check "the control row says approved by bin" \
	test "$(db "SELECT state || ' ' || decided_by || ' ' || decided_uid FROM pgward.approvals WHERE id = '$ID'")" = "approved bin 2"
JA approval show "$ID" >"$W/out.json" 2>&1
check "A's own record of it: approved by bin" \
	pyj "d['state'] == 'approved' and d['decided']['by'] == 'bin'" <"$W/out.json"
as bin "$CTL" -s "$SOCK_B" -j approval approve "$ID" >"$W/out.json" 2>&1
check "approving it again from B: already approved" grep -q 'approved already' "$W/out.json"
as bin "$CTL" -s "$SOCK_A" -j approval deny "$ID" >"$W/out.json" 2>&1
check "denying it on A: already approved" grep -q 'approved already' "$W/out.json"
JB approval list >"$W/out.json" 2>&1
check "B's list is empty again (decided)" pyj "d == []" <"$W/out.json"
JB approval list --all >"$W/out.json" 2>&1
check "B's list --all shows it decided" pyj "any(r['id'] == '$ID' and r['state'] == 'approved' for r in d)" <"$W/out.json"

# --- denied on B -----------------------------------------------------------------------------
agent a2 writer "DELETE FROM orders WHERE id = 2"
ID=$(on_b_pending)
as bin "$CTL" -s "$SOCK_B" -j approval deny "$ID" --reason "not today" >"$W/out.json" 2>&1
check "bin denies on B with a reason" \
	pyj "d['state'] == 'denied' and d['decided']['reason'] == 'not today' and d['decided']['scope'] is None" <"$W/out.json"
timeout 10 tail --pid="$AGENT" -f /dev/null
check "the agent on A got 42501 naming the request, the denier and the reason" \
	grep -q "approval request $ID was denied by bin (not today)" "$W/a2.out"
check "the row is still on the server" has 2

# --- decided by any tool: a plain SQL UPDATE --------------------------------------------------
agent a3 writer "DELETE FROM orders WHERE id = 3"
ID=$(on_b_pending)
check "a third request is held" test -n "$ID"
db "UPDATE pgward.approvals SET state = 'approved', reason = 'by hand' WHERE id = '$ID'" >/dev/null
timeout 10 tail --pid="$AGENT" -f /dev/null
check "a plain SQL UPDATE of the row: applied on A, the agent got DELETE 1" grep -q '^DELETE 1' "$W/a3.out"
check "the row is deleted on the server" bash -c "! has 3"
JA approval show "$ID" >"$W/out.json" 2>&1
check "A's record: approved by the database user who wrote the row (postgres)" \
	pyj "d['state'] == 'approved' and d['decided']['by'] == 'postgres' and d['decided']['reason'] == 'by hand'" <"$W/out.json"
flip=$(db "UPDATE pgward.approvals SET state = 'denied' WHERE id = '$ID'" 2>&1)
check "a decided row cannot be flipped by a tool either (the trigger refuses)" \
	test "$(grep -c "approval request $ID is approved already" <<<"$flip") $(row_state "$ID")" = "1 approved"

# --- decided on A itself: the row says so --------------------------------------------------------
agent a4 writer "DELETE FROM orders WHERE id = 4"
ID=$(on_b_pending)
as bin "$CTL" -s "$SOCK_A" -j approval approve "$ID" >"$W/out.json" 2>&1
check "bin approves on A (the holding node)" pyj "d['state'] == 'approved'" <"$W/out.json"
timeout 10 tail --pid="$AGENT" -f /dev/null
check "the agent got DELETE 1 and the row is gone" bash -c "grep -q '^DELETE 1' '$W/a4.out' && ! has 4"
check "the control row says approved by bin" wait_row "$ID" approved
as bin "$CTL" -s "$SOCK_B" -j approval deny "$ID" >"$W/out.json" 2>&1
check "denying it from B afterwards: already approved" grep -q 'approved already' "$W/out.json"

# --- a timeout on A ------------------------------------------------------------------------------
t0=$(date +%s)
"$PSQL" "$(conn "$PORT_A" quick)" -X -c "DELETE FROM orders WHERE id = 5" >"$W/a5.out" 2>&1
t1=$(date +%s)
ID=$(db "SELECT id FROM pgward.approvals WHERE identity = 'quick' ORDER BY created DESC LIMIT 1")
check "quick (2 s): the agent on A was refused after its timeout (42501, timed out)" \
	bash -c "grep -q 'timed out after 2 s' '$W/a5.out' && test $((t1 - t0)) -ge 2 && test $((t1 - t0)) -le 8"
check "the row says timed_out" wait_row "$ID" timed_out
check "nothing was deleted" has 5
as bin "$CTL" -s "$SOCK_B" -j approval approve "$ID" >"$W/out.json" 2>&1
check "approving a timed-out request from B: already" grep -q 'timed_out already' "$W/out.json"

# --- the agent leaves while held ---------------------------------------------------------------
agent a6 writer "DELETE FROM orders WHERE id = 6"
ID=$(on_b_pending)
{
	kill -KILL "$AGENT"
	wait "$AGENT"
} 2>/dev/null
check "the agent gone: the row says withdrawn" wait_row "$ID" withdrawn
as bin "$CTL" -s "$SOCK_B" -j approval approve "$ID" >"$W/out.json" 2>&1
sleep 0.5
check "approving it from B: already withdrawn, nothing runs" \
	test "$(grep -c 'withdrawn already' "$W/out.json") $(has 6 && echo there)" = "1 there"
JB approval approve node-a-nope-1 >"$W/out.json" 2>&1
check "an id nobody has: not found" grep -q 'no approval request node-a-nope-1' "$W/out.json"
check "rows on the server: 9 - 3 approved = 6" test "$(rows)" = 6

check "no warning about the control database in either log" \
	bash -c "! grep -i 'control database' '$W/a.log' '$W/b.log' | grep -qi 'warn\|error\|lost'"

# --- a node that stops withdraws what it holds ------------------------------------------------
agent a7 writer "DELETE FROM orders WHERE id = 7"
ID=$(on_b_pending)
kill -TERM "$PID_A"
wait "$PID_A"
ra=$?
timeout 10 tail --pid="$AGENT" -f /dev/null
check "node A stopping: its agent's connection was ended (57P01)" \
	grep -q "terminating connection due to administrator command" "$W/a7.out"
check "the row says withdrawn" wait_row "$ID" withdrawn
check "nothing was deleted" has 7

kill -TERM "$PID_B"
wait "$PID_B"
rb=$?
check "both pgwardd stopped cleanly" test "$ra$rb" = 00
check "their connections to the control database are closed" \
	bash -c "for i in \$(seq 40); do test \"\$(PGPASSWORD=\$(cat $PGTMP_DIR/postgres.pw) $PSQL -X -At -h 127.0.0.1 -p $PGTMP_PORT -U postgres -d postgres -c \"SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgward-approvals'\")\" = 0 && exit 0; sleep 0.1; done; exit 1"
finish
