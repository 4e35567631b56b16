#!/usr/bin/env bash
# Session recordings end to end (docs/recording.md): a throwaway PostgreSQL 15, pgwardd with a
# "recording" section and an "audit" trail, identities with "record": true. What must hold:
# `pgwardctl session replay` of a scripted psql session prints what psql printed (statements,
# result tables, row counts, errors, pgward's refusals), byte for byte once replay's own "-- "
# annotations are dropped; the trail's session_end names the recording and its SHA-256; a
# masked identity's recording holds the masked values and never the secret (the recording is
# written after masking); the authentication exchange (the password) is not in it; max_bytes
# stops a recording with a truncation frame that session_end reports.
#
# Standalone: BUILD=build-t bash tests/integration/recording.sh
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

trap 'pw_cleanup' EXIT
unset PGOPTIONS PGSERVICE
export PGCLIENTENCODING=UTF8
for f in "$BUILD/pgwardd" "$CTL"; do
	if [[ ! -x $f ]]; then
		echo "not ok - $f is missing (make BUILD=... all)"
		echo "1..1"
		exit 1
	fi
done
PGTMP_QUIET=1 pgtmp_start recording >/dev/null || {
	echo "not ok - throwaway cluster did not start"
	echo "1..1"
	exit 1
}
trap 'pw_cleanup; pgtmp_stop_all' EXIT
W=$PGTMP_DIR/pgward
mkdir -p "$W/recs" "$W/small"
PORT=$(pw_free_port)
PSQL=$PGTMP_PGBIN/psql
SECRET=078-05-1120
conn() { echo "host=127.0.0.1 port=$PORT user=$1 dbname=recdb sslmode=disable${2:+ password=$2}"; }
pgtmp_psql -q -c "CREATE DATABASE recdb" >/dev/null
pgtmp_psql -q -d recdb -c "CREATE TABLE people (id int PRIMARY KEY, name text, ssn text);
  INSERT INTO people VALUES (1, 'Ada', '$SECRET'), (2, 'Bob', '219-09-9999');
  CREATE TABLE t (id int, note text)" >/dev/null
VERIFIER=$(echo 'agent-pw-9f2e' | "$CTL" scram verifier 2>/dev/null || true)
cat >"$W/cfg.json" <<JSON
{
  "workers": 2,
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {"main": {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                         "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}},
  "audit": {"file": "$W/audit.jsonl", "fsync_interval_ms": 20},
  "recording": {"dir": "$W/recs"},
  "identities": [
    {"name": "agent", "match": {"user": "agent"}, "auth": "password", "scram_verifier": "$VERIFIER",
     "upstream": "main", "record": true,
     "rules": [{"name": "work", "action": "allow",
                "class": ["select", "insert", "update", "set", "transaction"],
                "relations": ["public.*", "pg_catalog.*"]}]},
    {"name": "masked", "match": {"user": "masked"}, "auth": "trust", "upstream": "main",
     "record": true,
     "rules": [{"name": "ssn", "action": "mask", "columns": "public.people.ssn",
                "strategy": "partial", "keep": 4},
               {"name": "read", "action": "allow", "class": ["select"],
                "relations": ["public.*", "pg_catalog.*"]}]}
  ]
}
JSON
pw_start_pgwardd "$W/cfg.json" "$W/pgwardd.log" || {
	echo "not ok - pgwardd did not start"
	sed 's/^/#   /' "$W/pgwardd.log"
	echo "1..1"
	exit 1
}
check "the agent's identity has a SCRAM verifier" test -n "$VERIFIER"

# --- a scripted psql session, replayed ------------------------------------------------------------
cat >"$W/script.sql" <<'SQL'
SELECT 1 AS one, 'x' AS letter;
SELECT id, name FROM people ORDER BY id;
SELECT count(*) FROM people;
DROP TABLE people;
SELECT 1/0;
INSERT INTO t VALUES (1, 'a'), (2, NULL);
SELECT * FROM t ORDER BY id;
UPDATE t SET note = 'b' WHERE id = 2;
BEGIN;
SELECT 42 AS answer;
COMMIT;
SQL
"$PSQL" "$(conn agent agent-pw-9f2e)" -X -e -f "$W/script.sql" >"$W/psql.out" 2>&1
# the session is over (psql's Terminate taken) before pgwardd stops
for _ in $(seq 50); do
	grep -q '"type":"session_end","session":1,' "$W/audit.jsonl" 2>/dev/null && break
	sleep 0.1
done
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
rec=$(ls "$W"/recs/*-1.pgrec 2>/dev/null | head -1)
check "a recording of session 1 exists, mode 0600 ($rec)" bash -c "test -f '$rec' && test \$(stat -c %a '$rec') = 600"
check "it is a gzip stream starting with PGWREC 1" bash -c "zcat '$rec' | head -1 | grep -qx 'PGWREC 1'"
"$CTL" session replay "$rec" >"$W/replay.out" 2>"$W/replay.err"
check "session replay succeeds" test -s "$W/replay.out"
grep -v '^-- ' "$W/replay.out" >"$W/replay.cmp"
sed -E 's/^psql:[^ ]+:[0-9]+: //' "$W/psql.out" >"$W/psql.cmp"
check "the replay prints what psql printed (statements, tables, row counts, errors)" \
	bash -c "diff -u '$W/psql.cmp' '$W/replay.cmp' >&2"
check "the replay marks pgward's refusal" grep -q -- '-- refused by pgward' "$W/replay.out"
check "the replay shows timings" grep -q -- '-- time: ' "$W/replay.out"
"$CTL" session replay --raw "$rec" >"$W/raw.out" 2>&1
check "--raw lists the frames (a Query and a DataRow)" \
	bash -c "grep -q 'F Query' '$W/raw.out' && grep -q 'B DataRow' '$W/raw.out'"
check "the password is not in the recording (no authentication exchange)" \
	bash -c "! zcat '$rec' | grep -aq 'agent-pw-9f2e' && ! zcat '$rec' | grep -aq 'SCRAM'"
sha=$(sha256sum "$rec" | cut -d' ' -f1)
check "session_end names the recording and its SHA-256" \
	/usr/bin/python3 "$top/tests/audit/facts.py" "$W/audit.jsonl" has session_end session=1 \
	"recording=$rec" "recording_sha256=$sha" recording_truncated=false

# --- a masked identity: the recording holds what the client saw -----------------------------------
pw_start_pgwardd "$W/cfg.json" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
out=$("$PSQL" "$(conn masked)" -X -Atc "SELECT name, ssn FROM people ORDER BY id" 2>&1)
check "the masked identity sees the ssn masked ($out)" bash -c "grep -q 'Ada|\\*\\*\\*\\*1120' <<<'$out' && ! grep -q '$SECRET' <<<'$out'"
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
mrec=$(ls -t "$W"/recs/*.pgrec | head -1)
check "the masked session's recording holds the masked value" bash -c "zcat '$mrec' | grep -aq '\\*\\*\\*\\*1120'"
check "... and never the secret (the recording is written after masking)" \
	bash -c "! zcat '$mrec' | grep -aq '$SECRET' && ! zcat '$mrec' | grep -aq '07805'"

# --- max_bytes ------------------------------------------------------------------------------------
/usr/bin/python3 - "$W/cfg.json" "$W/small" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["recording"] = {"dir": sys.argv[2], "max_bytes": 2048}
json.dump(c, open(sys.argv[1], "w"))
PY
pw_start_pgwardd "$W/cfg.json" "$W/pgwardd.log" || echo "not ok - pgwardd did not restart"
"$PSQL" "$(conn agent agent-pw-9f2e)" -X -qc "SELECT repeat('y', 5000)" >/dev/null 2>&1
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
srec=$(ls "$W"/small/*.pgrec | head -1)
"$CTL" session replay "$srec" >"$W/small.out" 2>&1
check "max_bytes: the recording stops and says so" grep -q 'recording truncated' "$W/small.out"
check "max_bytes: session_end says recording_truncated" \
	/usr/bin/python3 "$top/tests/audit/facts.py" "$W/audit.jsonl" has session_end recording_truncated=true
finish
