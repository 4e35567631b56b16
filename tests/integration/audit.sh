#!/usr/bin/env bash
# The audit trail end to end (docs/audit.md): a throwaway PostgreSQL 15 whose login role is the
# superuser (the policy is the only defence), pgwardd with an "audit" section, real clients
# (psql, pgbench in the simple and extended protocols). What the trail must hold: a
# session_start naming the identity, user and database; a statement record for each statement
# with its text, Bind parameters, decision, command tags, rows, SQLSTATE and duration (refused
# ones marked so, with the refusal); a session_end with its counts; policy_reload. Then the
# chain: pgwardctl audit verify accepts the trail and finds an edited byte; rotation keeps the
# chain across files; SIGKILL under load (pgbench and psql) leaves no torn line and the next
# pgwardd takes the chain up; a full disk (a small tmpfs, as root) refuses statements with
# 53100 (and they do not run), leaves only whole records, and the trail recovers when space
# returns (audit_recovered).
#
# Standalone: BUILD=build-t bash tests/integration/audit.sh (AUDIT_KEEP=DIR keeps its files)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
PY=/usr/bin/python3
CTL=$BUILD/pgwardctl
# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"

trap 'pw_cleanup' EXIT
unset PGOPTIONS PGSERVICE
for f in "$BUILD/pgwardd" "$CTL"; do
	if [[ ! -x $f ]]; then
		echo "not ok - $f is missing (make BUILD=... all)"
		echo "1..1"
		exit 1
	fi
done
PGTMP_QUIET=1 pgtmp_start audit >/dev/null || {
	echo "not ok - throwaway cluster did not start"
	echo "1..1"
	exit 1
}
FULL=
# AUDIT_KEEP=DIR keeps the work directory (trails, logs) there
keep() { [[ -n ${AUDIT_KEEP:-} && -d ${W:-} ]] && mkdir -p "$AUDIT_KEEP" && cp -a "$W/." "$AUDIT_KEEP/"; }
trap 'keep; pw_cleanup; [[ -n $FULL ]] && umount "$FULL" 2>/dev/null; pgtmp_stop_all' EXIT
W=$PGTMP_DIR/pgward
mkdir -p "$W/trail"
PORT=$(pw_free_port)
PSQL=$PGTMP_PGBIN/psql
PGBENCH=$PGTMP_PGBIN/pgbench
conn() { echo "host=127.0.0.1 port=$PORT user=${1:-agent} dbname=auditdb sslmode=disable"; }

pgtmp_psql -q -c "CREATE DATABASE auditdb" >/dev/null
pgtmp_psql -q -d auditdb -c "CREATE TABLE orders (id int PRIMARY KEY, amount int);
  INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 100) g;
  CREATE TABLE t (id serial, note text)" >/dev/null

# write_config FILE AUDIT_JSON: the configuration with the given audit section
write_config() {
	cat >"$1" <<JSON
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {"main": {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                         "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable",
                         "max_connections": 60}},
  "identities": [
    {"name": "agent", "match": {"user": "agent"}, "auth": "trust", "upstream": "main",
     "rules": [{"name": "work", "action": "allow",
                "class": ["select", "insert", "update", "delete", "set", "transaction"],
                "relations": ["public.*", "pg_catalog.*"]}]}
  ],
  "audit": $2
}
JSON
}
CONF=$W/pgwardd.json
TRAIL=$W/trail/audit.jsonl
write_config "$CONF" "{\"file\": \"$TRAIL\", \"fsync_interval_ms\": 20}"
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || {
	echo "not ok - pgwardd did not start"
	sed 's/^/#   /' "$W/pgwardd.log"
	echo "1..1"
	exit 1
}

# --- one scripted session, simple protocol ------------------------------------------------------
"$PSQL" "$(conn)" -X -q >"$W/psql.out" 2>&1 <<'SQL'
SELECT 1 AS one;
SELECT count(*) FROM orders WHERE amount > 500;
DROP TABLE orders;
SELECT 1/0;
INSERT INTO t(note) VALUES ('a'), ('b');
BEGIN; DELETE FROM t WHERE note = 'b'; ROLLBACK;
SQL
# one Query message with two statements (psql -c sends the string whole)
"$PSQL" "$(conn)" -X -q -c "UPDATE t SET note = 'c' WHERE note = 'a'; SELECT * FROM t" >>"$W/psql.out" 2>&1
# --- the extended protocol with parameters (pgbench -M extended) ----------------------------------
cat >"$W/ext.sql" <<'SQL'
\set id 42
SELECT amount FROM orders WHERE id = :id;
SQL
"$PGBENCH" -n -M extended -t 2 -f "$W/ext.sql" "$(conn)" >"$W/pgbench.out" 2>&1
kill -HUP "$PGWARDD_PID"
pw_wait_log "$W/pgwardd.log" "configuration reloaded" 10
sleep 0.3 # one group commit

# facts FILTER...: run the assertions of tests/audit/facts.py on the trail
facts() { "$PY" "$top/tests/audit/facts.py" "$TRAIL" "$@"; }
check "every line of the trail is one JSON object with v, seq, ts, type, prev and hash" facts form
check "session_start: identity agent, user agent, database auditdb, matched by user, the upstream" \
	facts has session_start identity=agent user=agent database=auditdb matched.user=agent upstream.name=main
check "SELECT 1: done, one row, command SELECT 1, a duration" \
	facts has statement 'text=SELECT 1 AS one;' status=done rows=1 'commands=["SELECT 1"]' protocol=simple decision=allow by=rule rule=1
check "a refused DROP TABLE is recorded refused, 42501, with the refusal's message" \
	facts has statement 'text=DROP TABLE orders;' status=refused decision=deny sqlstate=42501 'refusal~may not'
check "the refused DROP did not happen (orders still has 100 rows)" \
	test "$(pgtmp_psql -d auditdb -Atc 'SELECT count(*) FROM orders')" = 100
check "an error: status error, SQLSTATE 22012" facts has statement 'text=SELECT 1/0;' status=error sqlstate=22012
check "a multi-statement Query: one record, both command tags, rows summed" \
	facts has statement 'text~^UPDATE t SET .*; SELECT' 'commands=["UPDATE 1", "SELECT 2"]' rows=3 status=done
check "a transaction's statements, each recorded" facts has statement 'text=ROLLBACK;' 'commands=["ROLLBACK"]'
check "the extended protocol: the prepared text, the Bind parameter 42, one row" \
	facts has statement protocol=extended 'text~WHERE id = \$1' 'parameters=["42"]' rows=1 status=done
check "two Executes of pgbench are two records" facts count 2 statement protocol=extended
check "session_end: reason, statement count, bytes both ways" \
	facts has session_end identity=agent 'statements>=8' 'bytes_in>0' 'bytes_out>0'
check "policy_reload after SIGHUP, ok" facts has policy_reload ok=true
check "the first record is audit_start (seq 1, prev all zeros)" facts first audit_start
check "pgwardctl audit verify: the trail is whole" "$CTL" audit verify "$TRAIL"

# --- tampering: one edited byte is found with its seq --------------------------------------------
cp "$TRAIL" "$W/edited.jsonl"
"$PY" - "$W/edited.jsonl" <<'PY'
import sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')
for i, l in enumerate(lines):
    if b'"DROP TABLE orders;"' in l:
        lines[i] = l.replace(b'DROP TABLE orders;', b'DROP TABLE order5;')
        open(sys.argv[1] + '.seq', 'w').write(l.split(b'"seq":')[1].split(b',')[0].decode())
        break
open(sys.argv[1], 'wb').write(b'\n'.join(lines))
PY
out=$("$CTL" -j audit verify "$W/edited.jsonl" 2>&1)
rc=$?
check "an edited statement text: verify exits 1 naming its seq ($out)" \
	bash -c "test $rc = 1 && grep -q '\"seq\": *$(cat "$W/edited.jsonl.seq")[,}]' <<<'$out'"

# --- rotation -------------------------------------------------------------------------------------
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "a clean stop writes audit_stop" facts last audit_stop
write_config "$CONF" "{\"file\": \"$TRAIL\", \"fsync_interval_ms\": 20, \"rotate_bytes\": 8192}"
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
# rotation is checked before each batch (a group commit): several batches, each past the size
for r in 1 2 3 4 5 6; do
	for i in $(seq 1 20); do echo "SELECT $r, $i, repeat('x', 100);"; done | "$PSQL" "$(conn)" -X -q >/dev/null 2>&1
	sleep 0.1
done
sleep 0.3
n=$(ls "$W/trail" | grep -c '^audit\.jsonl\.[0-9]\{16\}$')
check "rotation by size: rotated files FILE.<seq> ($n)" test "$n" -ge 3
check "the restart took the chain up: audit_start resumed" facts has audit_start resumed=true
check "verify over the rotated files and the current one, in any order" \
	bash -c "'$CTL' audit verify $(ls -r "$W"/trail/audit.jsonl* | tr '\n' ' ')"
mid=$(ls "$W"/trail/audit.jsonl.* | sort | sed -n 2p)
out=$("$CTL" audit verify $(ls "$W"/trail/audit.jsonl* | grep -v -x "$mid") 2>&1)
check "a whole rotated file missing is found ($out)" grep -q 'FAILED at record' <<<"$out"

# --- SIGKILL under load ----------------------------------------------------------------------------
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
write_config "$CONF" "{\"file\": \"$TRAIL\", \"fsync_interval_ms\": 50}"
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
"$PGBENCH" -n -c 4 -T 10 -M extended -f "$W/ext.sql" "$(conn)" >"$W/load.out" 2>&1 &
bench=$!
for i in 1 2; do
	(for j in $(seq 1 400); do echo "SELECT $j;"; done | "$PSQL" "$(conn)" -X -q >/dev/null 2>&1) &
done
sleep 2
kill -9 "$PGWARDD_PID"
wait "$PGWARDD_PID" 2>/dev/null
wait "$bench" 2>/dev/null
wait
check "after SIGKILL under load: no torn line (the file ends with a newline)" \
	bash -c "test \"\$(tail -c 1 '$TRAIL' | od -An -c | tr -d ' ')\" = '\\n'"
check "after SIGKILL under load: the trail verifies" bash -c "'$CTL' audit verify $W/trail/audit.jsonl*"
before=$(wc -l <"$TRAIL")
pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
"$PSQL" "$(conn)" -X -qAtc "SELECT 'after kill'" >/dev/null 2>&1
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "the next pgwardd continued the chain (records $before → $(wc -l <"$TRAIL"))" \
	bash -c "test $(wc -l <"$TRAIL") -gt $before && '$CTL' audit verify $W/trail/audit.jsonl*"
check "statements of the load were recorded" facts count-min 100 statement protocol=extended

# --- a full disk -----------------------------------------------------------------------------------
if [[ $EUID -ne 0 ]]; then
	check_skip "disk full: refused with 53100, recovered" "needs root to mount a tmpfs"
else
	FULL=$W/full
	mkdir -p "$FULL"
	mount -t tmpfs -o size=1m tmpfs "$FULL"
	write_config "$CONF" "{\"file\": \"$FULL/audit.jsonl\", \"fsync_interval_ms\": 20}"
	pw_start_pgwardd "$CONF" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
	# fill the filesystem but for a few KiB
	dd if=/dev/zero of="$FULL/filler" bs=4k count=1000 2>/dev/null
	out=""
	for i in $(seq 1 60); do
		out=$("$PSQL" "$(conn)" -X -v VERBOSITY=verbose -qAtc "INSERT INTO t(note) VALUES ('full $i') RETURNING 'inserted'" 2>&1)
		grep -q '53100' <<<"$out" && break
		sleep 0.05
	done
	check "disk full: a statement is refused with 53100 naming the audit trail ($out)" \
		bash -c "grep -q 'audit trail' <<<'$out' && grep -q 53100 <<<'$out'"
	check "disk full: the refused INSERT did not run" \
		test "$(pgtmp_psql -d auditdb -Atc "SELECT count(*) FROM t WHERE note = 'full $i'")" = 0
	check "disk full: the trail holds only whole records" \
		bash -c "test \"\$(tail -c 1 '$FULL/audit.jsonl' | od -An -c | tr -d ' ')\" = '\\n' && '$CTL' audit verify '$FULL/audit.jsonl'"
	rm -f "$FULL/filler"
	ok=""
	for i in $(seq 1 50); do
		ok=$("$PSQL" "$(conn)" -X -qAtc "SELECT 'recovered'" 2>&1)
		[[ $ok == recovered ]] && break
		sleep 0.1
	done
	check "space returns: statements run again ($ok)" test "$ok" = recovered
	kill -TERM "$PGWARDD_PID"
	wait "$PGWARDD_PID"
	TRAIL=$FULL/audit.jsonl
	check "audit_recovered names the error and counts the refusals" \
		facts has audit_recovered 'error~No space' 'refused>=1'
	check "after recovery the trail verifies" "$CTL" audit verify "$FULL/audit.jsonl"
	umount "$FULL"
	FULL=
fi
# --- signed checkpoints and syslog (a unix datagram receiver) ---------------------------------------
SW=$W/signed
mkdir -p "$SW"
# out_is RC WANT PATTERN TEXT: a command's exit code and output as wanted
out_is() { [[ $1 == "$2" ]] && grep -q -- "$3" <<<"$4"; }
line() { tr '\n' ' ' <<<"$1"; }
"$CTL" audit keygen --out "$SW/audit.key" >"$SW/pub.pem" 2>/dev/null
"$CTL" audit keygen --out "$SW/other.key" >"$SW/other.pem" 2>/dev/null
check "pgwardctl audit keygen: a private key 0600, its public key on stdout" \
	bash -c "test \"\$(stat -c %a '$SW/audit.key')\" = 600 && grep -q 'BEGIN PUBLIC KEY' '$SW/pub.pem'"
# the receiver: each datagram one line of syslog.out, until stop is there and none comes
"$PY" - "$SW/log.sock" "$SW/syslog.out" "$SW/stop" <<'PY' &
import os, socket, sys
path, out, stop = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.3)
with open(out, 'wb') as f:
    while True:
        try:
            f.write(s.recv(1 << 20) + b'\n')
        except socket.timeout:
            if os.path.exists(stop):
                break
PY
rx=$!
for i in $(seq 1 50); do [[ -S $SW/log.sock ]] && break; sleep 0.05; done
STRAIL=$SW/audit.jsonl
write_config "$CONF" "{\"file\": \"$STRAIL\", \"fsync_interval_ms\": 20,
  \"checkpoint\": {\"key_file\": \"$SW/audit.key\", \"every\": 10},
  \"syslog\": {\"socket\": \"$SW/log.sock\"}}"
if pw_start_pgwardd "$CONF" "$W/pgwardd.log"; then
	for i in $(seq 1 25); do echo "SELECT $i AS n;"; done | "$PSQL" "$(conn)" -X -q >/dev/null 2>&1
	"$PSQL" "$(conn)" -X -q -c "DROP TABLE t" >/dev/null 2>&1
	kill -TERM "$PGWARDD_PID"
	wait "$PGWARDD_PID"
else
	echo "not ok - pgwardd did not start with checkpoints and syslog"
	sed 's/^/#   /' "$W/pgwardd.log" | tail -5
fi
touch "$SW/stop"
wait "$rx"
out=$("$CTL" audit verify --key "$SW/pub.pem" "$STRAIL" 2>&1)
rc=$?
check "verify --key with the public key: ok, every record covered ($(line "$out"))" \
	out_is $rc 0 'signed by this key; every record is covered' "$out"
check "checkpoints every 10 records and a last one after audit_stop" "$PY" - "$STRAIL" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], 'rb')]
n = since = 0
for i, r in enumerate(recs):
    if r['type'] == 'checkpoint':
        assert r['signed_seq'] == recs[i - 1]['seq'] and r['signed_hash'] == recs[i - 1]['hash']
        n += 1
        since = 0
    else:
        since += 1
        assert since <= 10, r['seq']
assert n >= 4 and recs[-1]['type'] == 'checkpoint' and recs[-2]['type'] == 'audit_stop', n
PY
out=$("$CTL" audit verify --key "$SW/other.pem" "$STRAIL" 2>&1)
rc=$?
check "verify --key with another key: exit 1, not signed by this key ($(line "$out"))" \
	out_is $rc 1 'is not signed by this key' "$out"
# a trail regenerated by someone without the key: a statement changed, the chain made again
# (hashes right), the checkpoints kept as they were, or left out
"$PY" - "$STRAIL" "$SW/regen.jsonl" "$SW/stripped.jsonl" <<'PY'
import hashlib, json, re, sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-1]
def rechain(lines, drop_checkpoints):
    out, prev, seq = [], b'0' * 64, 0
    for l in lines:
        if drop_checkpoints and b'"type":"checkpoint"' in l:
            continue
        seq += 1
        l = l.replace(b'SELECT 7 AS n;', b'SELECT 8 AS n;')
        l = re.sub(rb'^\{"v":1,"seq":\d+,', b'{"v":1,"seq":%d,' % seq, l)
        body = l[:l.rindex(b',"prev":"')] + b',"prev":"' + prev + b'"'
        h = hashlib.sha256(body).hexdigest().encode()
        out.append(body + b',"hash":"' + h + b'"}')
        prev = h
    return b'\n'.join(out) + b'\n'
open(sys.argv[2], 'wb').write(rechain(lines, False))
open(sys.argv[3], 'wb').write(rechain(lines, True))
PY
out=$("$CTL" audit verify --key "$SW/pub.pem" "$SW/regen.jsonl" 2>&1)
rc=$?
check "a regenerated trail with the real checkpoints copied: fails ($(line "$out"))" \
	out_is $rc 1 'FAILED at record .*does not sign the record before it' "$out"
out=$("$CTL" audit verify --key "$SW/pub.pem" "$SW/stripped.jsonl" 2>&1)
rc=$?
check "a regenerated trail without checkpoints: a valid chain ..." "$CTL" audit verify "$SW/stripped.jsonl"
check "  ... but verify --key fails: no checkpoint ($(line "$out"))" \
	out_is $rc 1 'no checkpoint' "$out"
check "syslog got every line of the file, the same JSON byte for byte, PRI 86 (85: the refusal)" \
	"$PY" - "$STRAIL" "$SW/syslog.out" <<'PY'
import sys
lines = open(sys.argv[1], 'rb').read().split(b'\n')[:-1]
msgs = open(sys.argv[2], 'rb').read().split(b'\n')[:-1]
assert len(msgs) == len(lines), (len(msgs), len(lines))
deny = 0
for m, l in zip(msgs, lines):
    head, _, body = m.partition(b' audit - ')
    assert body == l, (m[:200], l[:200])
    pri = 85 if (b'"type":"statement"' in l and b',"decision":"deny"' in l) else 86
    deny += pri == 85
    assert head.startswith(b'<%d>1 ' % pri) and b' pgward ' in head, head
assert deny >= 1
PY
finish
