#!/usr/bin/env bash
# The live control plane end to end (docs/control.md, docs/approvals.md): a throwaway
# PostgreSQL 15 whose login is the superuser (the policy is the only defence), pgwardd with a
# "control" socket, a "metrics" endpoint, an audit trail and approvals; pgwardctl against it.
# What must hold: every command's JSON shape, field by field, against live sessions; plain
# output; permissions by uid and group (readers, operators, approvers); session kill; watch;
# reload with its errors returned; stats and the Prometheus scrape; approvals: approve, deny,
# timeout, client gone, cancel, a held statement inside a pipeline, approver rules, a
# fingerprint grant and its expiry, the session scope, the notify command, the trail; the
# socket fuzzed with malformed, huge and slow requests while pgbench runs.
#
# Standalone: BUILD=build-t bash tests/integration/control.sh
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
PGTMP_QUIET=1 pgtmp_start control >/dev/null || {
	echo "not ok - throwaway cluster did not start"
	echo "1..1"
	exit 1
}
BGPIDS=()
trap 'kill "${BGPIDS[@]}" 2>/dev/null; pw_cleanup; pgtmp_stop_all' EXIT
W=$PGTMP_DIR/pgward
mkdir -p "$W"
chmod 755 "$W" "$PGTMP_DIR" 2>/dev/null
PORT=$(pw_free_port)
MPORT=$(pw_free_port)
SOCK=$W/control.sock
PSQL=$PGTMP_PGBIN/psql
conn() { echo "host=127.0.0.1 port=$PORT user=$1 dbname=ctldb sslmode=disable application_name=${2:-psql}"; }
pgtmp_psql -q -c "CREATE DATABASE ctldb" >/dev/null
reset_orders() {
	pgtmp_psql -q -d ctldb -c "DROP TABLE IF EXISTS orders, pt; DROP SEQUENCE IF EXISTS pseq;
	  CREATE TABLE orders (id int PRIMARY KEY, amount int);
	  INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 3) g;
	  CREATE TABLE pt (id int); INSERT INTO pt VALUES (1), (2), (3);
	  CREATE SEQUENCE pseq" >/dev/null
}
reset_orders
rows() { pgtmp_psql -At -d ctldb -c "SELECT count(*) FROM $1"; }

# users of this machine that the tests act as: "daemon" (group daemon) reads, "bin" (group
# bin) operates and approves, "nobody" has no group of the socket's
id daemon >/dev/null && id bin >/dev/null && id nobody >/dev/null || {
	echo "not ok - the users daemon, bin and nobody are needed"
	echo "1..1"
	exit 1
}
as() { # as USER CMD...: run as that user with its own groups
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups "$@"
}
cat >"$W/notify.sh" <<SH
#!/bin/sh
cat >>"$W/notified.jsonl"
SH
chmod 755 "$W/notify.sh"

write_cfg() { # write_cfg EXTRA_RULE_JSON
	cat >"$W/cfg.json" <<JSON
{
  "workers": 2,
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {"main": {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                         "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}},
  "control": {"socket": "$SOCK", "mode": "0666", "readers": ["daemon"], "operators": ["bin"]},
  "metrics": {"host": "127.0.0.1", "port": $MPORT},
  "audit": {"file": "$W/audit.jsonl", "fsync_interval_ms": 20},
  "approvals": {"timeout_seconds": 60, "notify": ["$W/notify.sh"]},
  "identities": [
    {"name": "reader", "match": {"user": "reader"}, "auth": "trust", "upstream": "main",
     "rules": [{"name": "reads", "action": "allow", "class": ["select", "transaction", "set"],
                "relations": ["public.*", "pg_catalog.*"], "functions": ["pg_catalog.*"]}$1]},
    {"name": "writer", "match": {"user": "writer"}, "auth": "trust", "upstream": "main",
     "approvals": {"users": ["bin"]},
     "rules": [{"name": "deletes need a person", "action": "approve", "class": ["delete"],
                "relations": ["public.orders", "public.pt", "public.scratch"]},
               {"name": "work", "action": "allow",
                "class": ["select", "insert", "update", "transaction", "set"],
                "relations": ["public.*", "pg_catalog.*"], "functions": ["pg_catalog.*"]}]},
    {"name": "quick", "match": {"user": "quick"}, "auth": "trust", "upstream": "main",
     "approvals": {"timeout_seconds": 2},
     "rules": [{"name": "work", "action": "allow", "class": ["select", "delete"],
                "relations": ["public.*"]}]}
  ]
}
JSON
}
write_cfg ""
pw_start_pgwardd "$W/cfg.json" "$W/pgwardd.log" || {
	echo "not ok - pgwardd did not start"
	sed 's/^/#   /' "$W/pgwardd.log"
	echo "1..1"
	exit 1
}
J() { "$CTL" -s "$SOCK" -j "$@"; }
# pyj PYTHON-EXPRESSION: the JSON on stdin as d; the expression must hold
pyj() { $PY -c "import json,sys; d=json.load(sys.stdin); ok=($1); print(json.dumps(d)[:2000], file=sys.stderr) if not ok else None; sys.exit(0 if ok else 1)"; }
jq_() { J "$@" >"$W/out.json" 2>"$W/out.err"; }
# for the checks that run in bash -c
export PY CTL SOCK W PGTMP_DIR PGTMP_HOST PGTMP_PORT PGTMP_PGBIN
export -f pyj J rows pgtmp_psql pgtmp__err

check "the socket has the configured mode (0666)" \
	bash -c "test \"\$(stat -c %a '$SOCK')\" = 666"

# --- sessions --------------------------------------------------------------------------------------
# an idle session in a transaction, and one running a statement
mkfifo "$W/idle.in" "$W/sess.in"
"$PSQL" "$(conn reader idler)" -X -q <"$W/idle.in" >"$W/idle.out" 2>&1 &
BGPIDS+=($!)
exec {IDLEFD}>"$W/idle.in"
echo "BEGIN; SELECT 1;" >&"$IDLEFD"
"$PSQL" "$(conn reader sleeper)" -X -q -c "SELECT pg_sleep(4)" >/dev/null 2>&1 &
BGPIDS+=($!)
for _ in $(seq 50); do
	n=$(J session show 2>/dev/null | $PY -c 'import json,sys; print(sum(1 for s in json.load(sys.stdin) if s["state"] in ("active","in transaction")))' 2>/dev/null)
	[[ $n == 2 ]] && break
	sleep 0.1
done
jq_ session show
check "session show lists both sessions" pyj 'len(d) == 2' <"$W/out.json"
check "session show: every documented field, with its type" pyj '
all(set(s) == {"id","worker","identity","matched","auth","user","database","application_name",
  "client","steered","upstream","role","kernel","state","statement","approval","started",
  "statements","bytes_in","bytes_out"} and isinstance(s["id"], int) and s["identity"] == "reader"
  and s["matched"]["user"] == "reader" and s["auth"] == "trust" and s["user"] == "reader"
  and s["database"] == "ctldb" and s["client"].startswith("127.0.0.1:") and s["steered"] is False
  and s["kernel"] is None and s["upstream"]["name"] == "main" and s["role"] is None
  and s["approval"] is None and s["started"].endswith("Z") and s["statements"] >= 1
  and s["bytes_in"] > 0 and s["bytes_out"] > 0 for s in d)' <"$W/out.json"
check "session show: the idle one is in transaction, with its last statement" pyj '
any(s["application_name"] == "idler" and s["state"] == "in transaction"
    and s["statement"]["text"] == "SELECT 1;" and s["statement"]["age_ms"] >= 0 for s in d)' <"$W/out.json"
check "session show: the sleeping one is active, its statement and age shown" pyj '
any(s["application_name"] == "sleeper" and s["state"] == "active"
    and "pg_sleep(4)" in s["statement"]["text"] for s in d)' <"$W/out.json"
IDLE_ID=$($PY -c 'import json,sys; print([s["id"] for s in json.load(open(sys.argv[1])) if s["application_name"]=="idler"][0])' "$W/out.json")
jq_ session show id "$IDLE_ID"
check "session show id N: that one only" pyj "len(d) == 1 and d[0]['id'] == $IDLE_ID" <"$W/out.json"
jq_ session show identity writer
check "session show identity NAME: none of writer" pyj 'd == []' <"$W/out.json"
J session show id 999999 >"$W/out.json" 2>"$W/out.err"
rc=$?
check "session show id of no session: exit 1, {\"error\"} naming it" \
	bash -c "test $rc = 1 && grep -q 'no session 999999' '$W/out.json'"
"$CTL" -s "$SOCK" session show >"$W/plain.out" 2>&1
check "session show (plain) names the sessions and their state" \
	bash -c "grep -q 'identity reader' '$W/plain.out' && grep -q 'in transaction' '$W/plain.out'"
J session show >"$W/out1.json" 2>&1
"$CTL" -s "$SOCK" -j s sh >"$W/out2.json" 2>&1
ids() { $PY -c 'import json,sys; print(sorted(s["id"] for s in json.load(open(sys.argv[1]))))' "$1"; }
check "pgwardctl s sh is session show" test "$(ids "$W/out1.json")" = "$(ids "$W/out2.json")"

# --- watch -------------------------------------------------------------------------------------------
J session watch >"$W/watch.jsonl" 2>"$W/watch.err" &
WATCH=$!
BGPIDS+=("$WATCH")
sleep 0.5
"$PSQL" "$(conn reader watched)" -X -q -c "SELECT 42" -c "DROP TABLE orders" >/dev/null 2>&1
sleep 0.5
kill "$WATCH" 2>/dev/null
wait "$WATCH" 2>/dev/null
check "session watch: SELECT 42 allowed, DROP TABLE denied with its rule and SQLSTATE" $PY -c '
import json,sys
L=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
a=[l for l in L if l.get("text")=="SELECT 42"]
d=[l for l in L if l.get("text")=="DROP TABLE orders"]
ok=(a and a[0]["decision"]=="allow" and a[0]["identity"]=="reader" and a[0]["type"]=="Q"
    and d and d[0]["decision"]=="deny" and d[0]["sqlstate"]=="42501" and d[0]["by"]=="default")
sys.exit(0 if ok else 1)' "$W/watch.jsonl"
check "the table is still there (the deny happened)" test "$(rows orders)" = 3

# --- kill --------------------------------------------------------------------------------------------
as bin "$CTL" -s "$SOCK" -j session kill id "$IDLE_ID" >"$W/out.json" 2>&1
check "session kill id N (as an operator): {id, killed}" pyj "d == {'id': $IDLE_ID, 'killed': True}" <"$W/out.json"
echo "SELECT 2;" >&"$IDLEFD" 2>/dev/null
sleep 0.5
exec {IDLEFD}>&- 2>/dev/null
check "the killed client got 57P01 naming the operator" \
	grep -q 'terminating connection due to administrator command (pgward: session .* killed by bin' "$W/idle.out"
jq_ session show id "$IDLE_ID"
check "the killed session is gone" grep -q "no session $IDLE_ID" "$W/out.json"

# --- permissions -------------------------------------------------------------------------------------
as nobody "$CTL" -s "$SOCK" -j session show >"$W/out.json" 2>&1
rc=$?
check "nobody (no group): permission refused, non-zero exit" \
	bash -c "test $rc = 4 && grep -q 'uid 65534 may not use this socket' '$W/out.json'"
as daemon "$CTL" -s "$SOCK" -j session show >"$W/out.json" 2>&1
check "a reader (group daemon) may show sessions" pyj 'isinstance(d, list)' <"$W/out.json"
as daemon "$CTL" -s "$SOCK" -j session kill id 1 >"$W/out.json" 2>&1
check "a reader may not kill" grep -q 'may not run \\"session kill\\"' "$W/out.json"
as daemon "$CTL" -s "$SOCK" -j policy reload >"$W/out.json" 2>&1
check "a reader may not reload" grep -q 'may not run' "$W/out.json"
check "the refusals are logged with the uid" grep -q 'control: refused session kill to .daemon. (uid 1,' "$W/pgwardd.log"

# --- identities, policy, reload ----------------------------------------------------------------------
jq_ identity show
check "identity show: the three identities, documented fields" pyj '
[i["name"] for i in d] == ["reader","writer","quick"] and
all(set(i) == {"name","match","auth","upstream","role","jit","record","rules","masks",
  "guardrails_off","approvers","approval_timeout_seconds","sessions"} for i in d) and
d[1]["approvers"]["uids"] == [2] and d[2]["approval_timeout_seconds"] == 2 and
d[0]["approval_timeout_seconds"] == 60 and d[0]["match"] == {"user": "reader", "auth": "trust"}' <"$W/out.json"
jq_ policy show identity writer
check "policy show identity writer: its rules in order" pyj '
d["identities"][0]["name"] == "writer" and
[r["action"] for r in d["identities"][0]["rules"]] == ["approve","allow"] and
d["identities"][0]["rules"][0]["classes"] == ["delete"] and
d["identities"][0]["guardrails"]["no_where"] is True' <"$W/out.json"
write_cfg ', {"name": "reload marker", "action": "allow", "class": ["select"], "relations": ["public.marker"]}'
as bin "$CTL" -s "$SOCK" -j policy reload >"$W/out.json" 2>&1
check "policy reload (operator): reloaded, the config named" pyj "d['reloaded'] is True and d['config'] == '$W/cfg.json'" <"$W/out.json"
jq_ policy show identity reader
check "the new rule is in the running policy" grep -q 'reload marker' "$W/out.json"
cp "$W/cfg.json" "$W/cfg.good"
echo '{"workers": 2, "listen": [' >"$W/cfg.json"
J policy reload >"$W/out.json" 2>&1
rc=$?
check "a broken file: policy reload fails (exit 1) and says why" \
	bash -c "test $rc = 1 && grep -q 'cfg.json' '$W/out.json'"
cp "$W/cfg.good" "$W/cfg.json"
jq_ policy show identity reader
check "the running policy is the last good one" grep -q 'reload marker' "$W/out.json"

# --- approvals ---------------------------------------------------------------------------------------
wait_pending() { # wait_pending N: until N requests are pending; prints the newest id
	local i
	for i in $(seq 100); do
		J approval list >"$W/al.json" 2>/dev/null
		if $PY -c "import json,sys; sys.exit(0 if len(json.load(open(sys.argv[1]))) == $1 else 1)" "$W/al.json"; then
			$PY -c 'import json,sys; L=json.load(open(sys.argv[1])); print(L[-1]["id"] if L else "")' "$W/al.json"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
"$PSQL" "$(conn writer)" -X -c "DELETE FROM orders WHERE id = 1" >"$W/a1.out" 2>&1 &
A1=$!
ID=$(wait_pending 1)
check "a DELETE that needs approval is held (one pending request)" test -n "$ID"
check "the DELETE did not run while held" test "$(rows orders)" = 3
jq_ approval show "$ID"
check "approval show: the documented request" pyj '
d["state"] == "pending" and d["identity"] == "writer" and d["user"] == "writer" and
d["database"] == "ctldb" and d["statement"]["text"] == "DELETE FROM orders WHERE id = 1" and
d["statement"]["classes"] == ["delete"] and d["statement"]["by"] == "rule" and
d["statement"]["rule"] == 1 and len(d["statement"]["fingerprint"]) == 16 and
d["decided"] is None and d["kernel"] is None and d["created"].endswith("Z") and
d["expires"] > d["created"]' <"$W/out.json"
jq_ session show identity writer
check "session show: the held session's state is held, naming the request" \
	pyj "d[0]['state'] == 'held' and d[0]['approval'] == '$ID'" <"$W/out.json"
check "the notify command got the request as JSON on its stdin" \
	bash -c "for i in \$(seq 30); do grep -q '\"id\":\"$ID\"' '$W/notified.jsonl' 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
as daemon "$CTL" -s "$SOCK" -j approval approve "$ID" >"$W/out.json" 2>&1
check "a reader may not approve" grep -q 'may not run' "$W/out.json"
J approval approve "$ID" >"$W/out.json" 2>&1
check "root is not an approver of writer (approvers: bin): refused" grep -q 'not an approver of identity writer' "$W/out.json"
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" >"$W/out.json" 2>&1
check "bin approves: the request is approved, by bin, scope once" \
	pyj 'd["state"] == "approved" and d["decided"]["by"] == "bin" and d["decided"]["uid"] == 2 and d["decided"]["scope"] == "once"' <"$W/out.json"
wait "$A1"
check "the client got its result (DELETE 1)" grep -q '^DELETE 1' "$W/a1.out"
check "the row is gone" test "$(rows orders)" = 2
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" >"$W/out.json" 2>&1
check "approving it again: already approved" grep -q 'approved already' "$W/out.json"

# deny
"$PSQL" "$(conn writer)" -X -c "DELETE FROM orders WHERE id = 2" >"$W/a2.out" 2>&1 &
A2=$!
ID=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval deny "$ID" --reason "not today" >"$W/out.json" 2>&1
check "deny with a reason" pyj 'd["state"] == "denied" and d["decided"]["reason"] == "not today"' <"$W/out.json"
wait "$A2"
check "the client got 42501 naming the request, the denier and the reason" \
	grep -q "approval request $ID was denied by bin (not today)" "$W/a2.out"
check "the row is still there" test "$(rows orders)" = 2

# timeout (quick: 2 s)
t0=$(date +%s)
"$PSQL" "$(conn quick)" -X -c "DELETE FROM orders" >"$W/a3.out" 2>&1
t1=$(date +%s)
check "no_where guardrail: held, then denied after its 2 s timeout (42501, timed out)" \
	bash -c "grep -q 'timed out after 2 s' '$W/a3.out' && test $((t1 - t0)) -ge 2 && test $((t1 - t0)) -le 6"
check "nothing was deleted" test "$(rows orders)" = 2

# the client leaves while held
"$PSQL" "$(conn writer)" -X -c "DELETE FROM orders WHERE id = 3" >/dev/null 2>&1 &
A4=$!
ID=$(wait_pending 1)
kill -KILL "$A4"
wait "$A4" 2>/dev/null
for _ in $(seq 50); do
	J approval show "$ID" 2>/dev/null | grep -q '"withdrawn"' && break
	sleep 0.1
done
jq_ approval show "$ID"
check "a client gone while held withdraws its request" pyj 'd["state"] == "withdrawn"' <"$W/out.json"
check "nothing was deleted" test "$(rows orders)" = 2

# a cancel while held: psql sends a CancelRequest on SIGINT
"$PSQL" "$(conn writer)" -X -c "DELETE FROM orders WHERE id = 3" >"$W/a5.out" 2>&1 &
A5=$!
ID=$(wait_pending 1)
kill -INT "$A5"
wait "$A5"
check "a cancel while held: the client gets 57014 and the request is withdrawn" \
	bash -c "grep -q 'canceling statement due to user request (pgward: approval request $ID withdrawn)' '$W/a5.out' && $CTL -s '$SOCK' -j approval show '$ID' | grep -q withdrawn"
check "nothing was deleted" test "$(rows orders)" = 2

# a held statement inside a pipeline: nothing after it reaches the server before the decision
$PY "$here/ctlraw.py" "$PORT" pipeline writer ctldb >"$W/pipe.out" 2>&1 &
A6=$!
ID=$(wait_pending 1)
sleep 0.3
check "pipeline: the statement before the held one ran (the sequence moved once)" \
	test "$(pgtmp_psql -At -d ctldb -c 'SELECT last_value FROM pseq')" = 1
check "pipeline: the one after it did not reach the server" \
	test "$(pgtmp_psql -At -d ctldb -c 'SELECT last_value FROM pseq')" = 1
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" >/dev/null 2>&1
wait "$A6"
check "pipeline resumes where it stopped: SELECT, DELETE 3, SELECT, ready" \
	bash -c "printf 'tag SELECT 1\ntag DELETE 3\ntag SELECT 1\nready I\n' | diff - '$W/pipe.out' >&2"
check "pipeline: the sequence moved twice, pt is empty" \
	bash -c "test \"\$(pgtmp_psql -At -d ctldb -c 'SELECT last_value FROM pseq')\" = 2 && test \"\$(rows pt)\" = 0"

# a statement approved at its Parse is approved for one execution: each later one asks again,
# named or unnamed; a PREPARE approved in a simple Query leaves no free protocol Bind either
reset_orders
$PY "$here/ctlraw.py" "$PORT" named writer ctldb >"$W/named.out" 2>&1 &
A10=$!
ID=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" >/dev/null 2>&1
ID2=$(wait_pending 1)
check "named statement: the approved Parse's first execution ran, the second is held" \
	bash -c "test -n '$ID2' && test '$ID2' != '$ID' && test \"\$(rows pt)\" = 1"
jq_ approval show "$ID2"
check "the execution's request carries the statement's text" \
	pyj 'd["statement"]["type"] == "B" and d["statement"]["text"] == "DELETE FROM pt WHERE id < 3"' <"$W/out.json"
as bin "$CTL" -s "$SOCK" -j approval deny "$ID2" >/dev/null 2>&1
wait "$A10"
check "named statement: parsed, executed once (DELETE 2), the second execution denied" \
	bash -c "grep -q '^parsed' '$W/named.out' && grep -q '^tag DELETE 2' '$W/named.out' && grep -q '^error 42501 pgward: approval request $ID2 was denied' '$W/named.out'"
reset_orders
$PY "$here/ctlraw.py" "$PORT" rebind writer ctldb >"$W/rebind.out" 2>&1 &
A11=$!
ID=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" >/dev/null 2>&1
ID2=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval deny "$ID2" >/dev/null 2>&1
ID3=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval deny "$ID3" >/dev/null 2>&1
wait "$A11"
check "unnamed statement bound again: each later Bind asks (one DELETE, two refusals)" \
	bash -c "test \"\$(grep -c '^tag DELETE 1' '$W/rebind.out')\" = 1 && test \"\$(grep -c '^error 42501' '$W/rebind.out')\" = 2 && test \"\$(rows pt)\" = 2"
$PY "$here/ctlraw.py" "$PORT" prepbind writer ctldb >"$W/prepbind.out" 2>&1 &
A12=$!
ID=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" >/dev/null 2>&1
ID2=$(wait_pending 1)
jq_ approval show "$ID2"
check "a protocol Bind of an approved PREPARE is held, as EXECUTE would be" \
	pyj 'd["statement"]["type"] == "B" and d["statement"]["text"] == "EXECUTE \"s2\""' <"$W/out.json"
as bin "$CTL" -s "$SOCK" -j approval deny "$ID2" >/dev/null 2>&1
wait "$A12"
check "... and denied: nothing of it ran" \
	bash -c "grep -q '^tag PREPARE' '$W/prepbind.out' && grep -q '^error 42501' '$W/prepbind.out' && test \"\$(rows pt)\" = 2"
# a name prepared again: the store keeps the stricter of both (the server refuses the second)
"$PSQL" "$(conn writer)" -X -c "PREPARE s3 AS SELECT 1" -c "PREPARE s3 AS DELETE FROM pt" -c "EXECUTE s3" >"$W/p3.out" 2>&1 &
A13=$!
ID=$(wait_pending 1)
check "PREPARE of a name held already is judged (held), and its EXECUTE would be the stricter" test -n "$ID"
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" >/dev/null 2>&1
ID2=$(wait_pending 1)
check "EXECUTE of the name after a second PREPARE asks (judged as the DELETE too)" test -n "$ID2"
as bin "$CTL" -s "$SOCK" -j approval deny "$ID2" >/dev/null 2>&1
wait "$A13"
check "nothing was deleted (the server refused the second PREPARE, the EXECUTE was denied)" \
	test "$(rows pt)" = 2

# a fingerprint grant (--for): the same statement shape runs without a person while it lasts
reset_orders
"$PSQL" "$(conn writer)" -X -c "DELETE FROM orders WHERE id = 1" >/dev/null 2>&1 &
A7=$!
ID=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" --for 3s >"$W/out.json" 2>&1
check "approve --for 3s: scope fingerprint, 3 seconds" \
	pyj 'd["decided"]["scope"] == "fingerprint" and d["decided"]["for_seconds"] == 3' <"$W/out.json"
wait "$A7"
timeout 10 "$PSQL" "$(conn writer)" -X -c "DELETE FROM orders WHERE id = 2" >"$W/a8.out" 2>&1
check "within the grant, the same shape with another literal runs at once" grep -q '^DELETE 1' "$W/a8.out"
sleep 3.5
"$PSQL" "$(conn writer)" -X -c "DELETE FROM orders WHERE id = 3" >/dev/null 2>&1 &
A9=$!
ID=$(wait_pending 1)
check "after the grant expired, it is held again" test -n "$ID"
as bin "$CTL" -s "$SOCK" -j approval deny "$ID" >/dev/null 2>&1
wait "$A9"
# a grant covers the same shape only: a text whose 64-bit fingerprint collides is held
pgtmp_psql -q -d ctldb -c "CREATE TABLE IF NOT EXISTS scratch (id int); INSERT INTO scratch VALUES (1)" >/dev/null
"$PSQL" "$(conn writer)" -X -c "DELETE FROM scratch /*SdQLAgSHfUF*/" >/dev/null 2>&1 &
A14=$!
ID=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" --for 60s >/dev/null 2>&1
wait "$A14"
"$PSQL" "$(conn writer)" -X -c "DELETE FROM orders /*q1UKdtO0CpI*/" >/dev/null 2>&1 &
A15=$!
ID=$(wait_pending 1)
check "a colliding fingerprint gets no grant: held (the shape is compared whole)" test -n "$ID"
as bin "$CTL" -s "$SOCK" -j approval deny "$ID" >/dev/null 2>&1
wait "$A15"

# the session scope: the rest of this session's approvals are given
reset_orders
"$PSQL" "$(conn writer)" -X -q <"$W/sess.in" >"$W/sess.out" 2>&1 &
BGPIDS+=($!)
exec {SESSFD}>"$W/sess.in"
echo "DELETE FROM orders WHERE id = 1;" >&"$SESSFD"
ID=$(wait_pending 1)
as bin "$CTL" -s "$SOCK" -j approval approve "$ID" --session >"$W/out.json" 2>&1
check "approve --session: scope session" pyj 'd["decided"]["scope"] == "session"' <"$W/out.json"
echo "DELETE FROM orders WHERE id = 2;" >&"$SESSFD"
sleep 1
J approval list >"$W/al.json"
check "the session's next DELETE needs nobody" bash -c "pyj 'd == []' <'$W/al.json' && test \"\$(rows orders)\" = 1"
exec {SESSFD}>&-
check "the trail has the requests, their decisions, and approved statements naming theirs" $PY -c '
import json,sys
L=[json.loads(l) for l in open(sys.argv[1])]
ev=[r["event"] for r in L if r["type"]=="approval"]
ok=all(e in ev for e in ("requested","approved","denied","timed_out","withdrawn"))
st=[r for r in L if r["type"]=="statement" and r.get("decision")=="approved"]
ids={r["id"] for r in L if r["type"]=="approval"}
sys.exit(0 if ok and st and all(r.get("approval") in ids for r in st) else 1)' "$W/audit.jsonl"
jq_ approval list --all
check "approval list --all keeps the decided ones" pyj 'len(d) >= 8 and all(r["state"] != "pending" for r in d)' <"$W/out.json"

# --- stats and metrics --------------------------------------------------------------------------------
jq_ stats
check "stats: the documented sections and plausible counts" pyj '
set(d) >= {"uptime_seconds","workers","sessions","statements","by_identity","analysis_cache",
  "bytes","latency_us","bpf","tuple_misses","approvals","audit"} and d["workers"] == 2 and
d["sessions"]["total"] >= 10 and d["statements"]["denied"] >= 1 and d["statements"]["held"] >= 8 and
d["statements"]["approved"] >= 3 and d["approvals"]["timed_out"] >= 1 and d["bpf"] is None and
d["by_identity"]["writer"]["held"] >= 7 and d["bytes"]["from_clients"] > 0 and
d["latency_us"]["count"] > 0 and d["latency_us"]["buckets"][-1][0] is None' <"$W/out.json"
curl -fsS "http://127.0.0.1:$MPORT/metrics" >"$W/metrics.txt" 2>"$W/curl.err"
check "the metrics endpoint answers GET /metrics" test -s "$W/metrics.txt"
check "the scrape parses as Prometheus text (families, counters _total, the histogram)" $PY -c '
import sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    text_string_to_metric_families = None
t=open(sys.argv[1]).read()
if text_string_to_metric_families:
    fams={f.name: f for f in text_string_to_metric_families(t)}
    ok="pgward_statements" in fams and fams["pgward_statements"].type=="counter"
    ok=ok and fams["pgward_statement_added_latency_seconds"].type=="histogram"
else:
    ok="# TYPE pgward_statements_total counter" in t and "pgward_statement_added_latency_seconds_bucket{le=\"+Inf\"}" in t
ok=ok and "pgward_statements_total{decision=\"held\"}" in t and "identity=\"writer\"" in t
sys.exit(0 if ok else 1)' "$W/metrics.txt"
check "the endpoint says 404 for another path" \
	bash -c "test \"\$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$MPORT/nope)\" = 404"

# --- the socket under attack, while pgbench runs -----------------------------------------------------
pgtmp_psql -q -d ctldb -c "CREATE TABLE IF NOT EXISTS bench (v int)" >/dev/null
bench() { echo "SELECT 1;" | $PGTMP_PGBIN/pgbench -n -c 4 -j 2 -T 5 -f /dev/stdin "$(conn reader pgbench)" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1; }
base=$(bench)
$PY "$here/ctlraw.py" "$SOCK" fuzz 5 >"$W/fuzz.out" 2>&1 &
FZ=$!
during=$(bench)
wait "$FZ"
fz=$?
check "fuzz: every malformed, huge or random request got an error or was dropped" test "$fz" = 0
check "fuzz: pgwardd is alive and answers" bash -c "kill -0 $PGWARDD_PID && J stats >/dev/null"
check "pgbench under the fuzz kept its throughput ($during vs $base tps, within noise: > 75 %)" \
	$PY -c "import sys; b=float('${base:-0}'); d=float('${during:-0}'); sys.exit(0 if b > 0 and d > 0.75 * b else 1)"
$PY "$here/ctlraw.py" "$SOCK" slow >"$W/slow.out" 2>&1
check "a request that never ends is dropped (within 15 s)" test $? = 0
sed 's/^/# /' "$W/fuzz.out"

kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "pgwardd stopped cleanly" test $? = 0
check "the socket file is removed at stop" test ! -e "$SOCK"
finish
