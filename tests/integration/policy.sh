#!/usr/bin/env bash
# The policy end to end: a throwaway PostgreSQL 15, pgwardd with tests/policy/policy.json.in,
# the corpus (tests/policy/corpus.tsv) decided by `pgwardctl policy explain` and by pgwardd
# through the simple protocol, the extended protocol, pipelines and protocol-level named
# statements; then the standard_conforming_strings attack, FunctionCall, session-level rules
# (databases, time windows, max_sessions, fixed role), the startup packet as the server reads it
# (replication and settings only a superuser may make, each with a differential against the
# server: repldiff.py, gucdiff.py), JWT identities, just-in-time roles,
# reload, and `pgwardctl policy check`. Prints "ok - ..." / "not ok - ..." per check.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
CLIENT=$BUILD/tests/policy_client

# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"

trap pw_cleanup EXIT
# the analyser reads text as UTF-8 (client_encodings defaults to UTF8): say so whatever the locale
export PGCLIENTENCODING=UTF8
PGTMP_QUIET=1 pgtmp_start policy >/dev/null || { echo "not ok - throwaway cluster did not start"; exit 1; }
W=$PGTMP_DIR/pgward
mkdir -p "$W"
PORT=$(pw_free_port)

pgtmp_psql -q -c "CREATE DATABASE policydb" >/dev/null
schema() {
	pgtmp_psql -q -d policydb >/dev/null 2>&1 <<-'SQL'
		DROP SCHEMA IF EXISTS secret CASCADE;
		DROP TABLE IF EXISTS orders, customers, audit_log, "Mixed Case" CASCADE;
		CREATE SCHEMA secret;
		CREATE TABLE customers (id int PRIMARY KEY, name text, email text);
		CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount numeric);
		CREATE TABLE audit_log (id serial PRIMARY KEY, msg text);
		CREATE TABLE secret.keys (id int, k text);
		CREATE TABLE "Mixed Case" (id int);
		CREATE OR REPLACE FUNCTION safe_fn() RETURNS int LANGUAGE sql AS 'SELECT 1';
		CREATE OR REPLACE FUNCTION evil_delete() RETURNS int LANGUAGE sql
			AS 'DELETE FROM orders; SELECT 1';
		CREATE OR REPLACE FUNCTION definer_read() RETURNS int LANGUAGE sql SECURITY DEFINER
			AS 'SELECT id FROM secret.keys LIMIT 1';
		CREATE OR REPLACE FUNCTION public.length(int) RETURNS int LANGUAGE sql
			AS 'DELETE FROM orders; SELECT 1';
		INSERT INTO customers VALUES (1, 'a', 'a@example.com'), (2, 'b', 'b@example.com');
		INSERT INTO orders VALUES (1, 1, 10), (2, 2, 20), (3, 1, 30);
		INSERT INTO audit_log (msg) VALUES ('one'), ('two');
		INSERT INTO secret.keys VALUES (1, 'k1');
		DROP ROLE IF EXISTS app_reader;
		CREATE ROLE app_reader;
		GRANT SELECT ON ALL TABLES IN SCHEMA public TO app_reader;
	SQL
}
schema

config() { # the corpus policy, plus extra identities ($1: JSON objects, comma-separated)
	sed -e "s/@PORT@/$PORT/; s/@PGPORT@/$PGTMP_PORT/; s#@PWFILE@#$PGTMP_DIR/postgres.pw#" \
		"$top/tests/policy/policy.json.in" | python3 -c '
import json, sys
c = json.load(sys.stdin)
extra = json.loads("[" + sys.argv[1] + "]") if sys.argv[1] else []
c["identities"] = extra + c["identities"]
c.update(json.loads(sys.argv[2]))
print(json.dumps(c, indent=1))' "${1:-}" "${2:-{\}}"
}

# --- the corpus ---------------------------------------------------------------------------------
config >"$W/policy.json"
check "policy check accepts the corpus policy" "$CTL" policy check "$W/policy.json"
pw_start_pgwardd "$W/policy.json" "$W/pgwardd.log" || { echo "not ok - pgwardd did not start"; cat "$W/pgwardd.log"; exit 1; }

grep -v '^#' "$top/tests/policy/corpus.tsv" | grep . >"$W/corpus"
cut -f3 "$W/corpus" >"$W/texts"
n=$(wc -l <"$W/texts")
check "the corpus has at least 150 statements ($n)" test "$n" -ge 150

# explain: every line for both identities, in one simulated session per line
python3 - "$CTL" "$W/policy.json" "$W/corpus" >"$W/explain.out" <<'PY'
import json, subprocess, sys
ctl, cfg, corpus = sys.argv[1:4]
for line in open(corpus):
    r, w, sql = line.rstrip("\n").split("\t")
    for ident, exp in (("reader", r), ("writer", w)):
        args = [ctl, "-j", "policy", "explain", "--config", cfg, "--identity", ident]
        for t in sql.split(" || "):
            args += ["--sql", t]
        p = subprocess.run(args, capture_output=True, text=True)
        res = [json.loads(o) for o in p.stdout.strip().split("\n")]
        got = res[-1]["decision"]
        pre_ok = exp != "allow" or all(x["decision"] == "allow" for x in res[:-1])
        need = ("decision", "rule", "reason", "statements")
        shape = all(k in res[-1] for k in need) and len(res[-1]["statements"]) >= 1
        ok = got == exp and pre_ok and shape and p.returncode == (0 if got == "allow" else 3)
        print("%s\t%s\t%s\t%s\t%s" % ("ok" if ok else "bad", ident, exp, got, sql))
PY
for who in reader writer; do
	bad=$(awk -F'\t' -v w=$who '$2 == w && $1 != "ok"' "$W/explain.out")
	check "explain: $n corpus decisions for $who as expected" test -z "$bad"
	[[ -z $bad ]] || sed 's/^/#   /' <<<"$bad" | head -10
done

# pgwardd: one fresh connection per line, per identity, per protocol
corpus_run() { # mode identity column
	"$CLIENT" "host=127.0.0.1 port=$PORT user=$2 dbname=policydb sslmode=disable" "$1" <"$W/texts" >"$W/run.$1.$2"
	paste <(cut -f"$3" "$W/corpus") "$W/run.$1.$2" "$W/texts" |
		awk -F'\t' '{ split($2, g, " "); if (g[1] != $1) print "#   expected " $1 ", got " $2 ": " $3 }'
}
for mode in q x p; do
	case $mode in q) what="simple protocol (psql's)" ;; x) what="extended protocol" ;; p) what="pipelined" ;; esac
	for who in reader writer; do
		col=1
		[[ $who == writer ]] && col=2
		schema
		bad=$(corpus_run $mode $who $col)
		if [[ $mode == x || $mode == p ]]; then
			# several commands in one Parse are the server's error whatever pgward says
			bad=$(grep -v ';' <<<"$bad" || true)
		fi
		check "pgwardd, $what: corpus decisions for $who as expected" test -z "$bad"
		[[ -z $bad ]] || head -10 <<<"$bad"
	done
done
# (libpq allows no COPY in pipeline mode: those lines are left out of this check)
skew=$(paste "$W/run.p.reader" "$W/run.p.writer" "$W/texts" | grep skew | grep -v COPY || true)
check "pipelines stay in step around refused statements" test -z "$skew"
[[ -z $skew ]] || head -5 <<<"$skew" | sed 's/^/#   /' 
schema

# protocol-level named statements are judged at Parse and remembered for SQL EXECUTE
out=$(printf '%s\n' "SELECT * FROM orders" "DELETE FROM orders WHERE id = 3" | "$CLIENT" "host=127.0.0.1 port=$PORT user=reader dbname=policydb sslmode=disable" n)
check "named Parse: an allowed statement runs through SQL EXECUTE" test "$(sed -n 1p <<<"$out")" = allow
check "named Parse: a refused statement is refused at Parse" test "$(sed -n 2p <<<"$out")" = deny

R="host=127.0.0.1 port=$PORT dbname=policydb sslmode=disable"
psqlr() { psql -X "$R user=reader" "$@" 2>&1; }
not_in() { ! grep -q -- "$1" <<<"$2"; } # PATTERN TEXT: the text does not hold it
psqlw() { psql -X "$R user=writer" "$@" 2>&1; }

# the message names identity, rule and reason; the session goes on
out=$(psqlw -c "DELETE FROM audit_log WHERE id = 1" -c "SELECT 'still here'")
check "a refusal names identity, rule and reason" grep -q 'pgward: identity writer may not DELETE public.audit_log (rule 3 "audit-append-only")' <<<"$out"
check "the session continues after a refusal" grep -q 'still here' <<<"$out"
out=$(psqlw -Atc "SELECT count(*) FROM audit_log" -c "INSERT INTO audit_log (msg) VALUES ('x'); DELETE FROM audit_log WHERE id = 1" -c "SELECT count(*) FROM audit_log")
check "multi-statement: one refused, none runs" test "$(grep -E '^[0-9]+$' <<<"$out" | sort -u | wc -l)" = 1
out=$(psqlr -c "SELECT 1 +" 2>&1)
check "a statement that does not parse is refused with 42601, not forwarded" grep -q 'pgward: cannot analyse the statement' <<<"$out"
out=$(psqlr -v VERBOSITY=verbose -c "SELECT 1 +")
check "the refusal of unreadable text carries SQLSTATE 42601" grep -q 'ERROR:  42601' <<<"$out"
out=$(psqlr -v VERBOSITY=verbose -c "DELETE FROM orders WHERE id = 1")
check "a policy refusal carries SQLSTATE 42501" grep -q 'ERROR:  42501' <<<"$out"
deep=$(python3 -c 'print("SELECT " + "+".join(["1"] * 50000))')
out=$(psqlr -Atc "$deep" -c "SELECT 'alive'")
check "50000 chained additions are refused or answered, pgwardd keeps serving" grep -q alive <<<"$out"
deep=$(python3 -c 'print("SELECT 1 FROM (VALUES(1)) a" + " CROSS JOIN (VALUES(1)) x" * 41000)')
out=$(printf '%s;\nSELECT %s;\n' "$deep" "'alive'" | psqlr -v VERBOSITY=verbose -At)
check "41,000 CROSS JOINs: refused with 54001, pgwardd keeps serving" bash -c "grep -q 'ERROR:  54001: pgward: cannot analyse' <<<\"\$1\" && grep -q alive <<<\"\$1\"" _ "$out"
wide=$(python3 -c 'print("SELECT count(*) FROM orders WHERE id = 0" + " OR id = 1" * 5000)')
out=$(psqlr -Atc "$wide")
check "a 5,000-term OR is judged and answered by the server" test "$out" = 1

# --- the catalog pgwardd read of policydb ------------------------------------------------------
# the fullest read: the catalog is read again every catalog_ttl_seconds, and a read that falls
# while schema() drops and re-creates the tables counts fewer relations
cat_line=$(grep -o 'catalog: [0-9]* functions, [0-9]* schemas, [0-9]* relations of [^ ]*|policydb' "$W/pgwardd.log" | sort -t' ' -k6,6n | tail -1)
check "the catalog of policydb was read: $cat_line" awk '{ exit !($2 > 2000 && $4 >= 3 && $6 >= 5) }' <<<"$cat_line"

# --- a refused Parse followed by Flush is answered at the Flush ---------------------------------
out=$(python3 "$here/flush.py" "$PORT" reader policydb 2>&1)
rc=$?
printf '%s\n' "$out" | sed 's/^/# /'
check "a refused Parse + Flush (no Sync) gets its error at once, after what came before it" test "$rc" = 0
out=$(psqlw -Atc "BEGIN" -c "DELETE FROM audit_log" -c "SELECT 1" -c "ROLLBACK")
check "a refusal inside a transaction aborts it, as the server's own errors do" grep -q 'current transaction is aborted' <<<"$out"

# --- the analysis cache cannot be poisoned ------------------------------------------------------
# Two texts that an earlier cache key could not tell apart (a -- comment ends at \r for the
# server): an allowed SELECT first, then one that runs DELETE, on the same worker's cache.
schema
poison_a=$'SELECT --\r\'\n\'AS a, \' --\r\'\n'
poison_b=$'SELECT --\r\'\n\'AS a; DELETE FROM orders; SELECT \' --\r\'\n'
out=$(psqlr -Atc "$poison_a" -c "$poison_b" -c "$poison_b")
check "cache poisoning: the SELECT is answered" grep -q '^' <<<"$out"
check "cache poisoning: the DELETE text is refused" grep -q 'may not DELETE public.orders' <<<"$out"
check "cache poisoning: the orders are all still there" test "$(pgtmp_psql -d policydb -Atc "SELECT count(*) FROM orders")" = 3
esc() { local t=${1//\\/\\\\}; t=${t//$'\r'/\\r}; printf '%s' "${t//$'\n'/\\n}"; }
out=$("$CLIENT" "host=127.0.0.1 port=$PORT user=reader dbname=policydb sslmode=disable" xe <<<"$(esc "$poison_a") || $(esc "$poison_b")" 2>&1)
check "cache poisoning through Parse: refused" test "$out" = deny
check "cache poisoning through Parse: the orders are all still there" test "$(pgtmp_psql -d policydb -Atc "SELECT count(*) FROM orders")" = 3

# --- functions judged by what they are, row locks by what they lock -----------------------------
schema
out=$(psqlr -Atc "SELECT evil_delete()" -c "SELECT count(*) FROM orders WHERE evil_delete() > 0" -c "SELECT length(42)")
check "a function defined in the database is refused by name (a read rule)" grep -q 'may not call evil_delete() (a function defined in the database)' <<<"$out"
check "an overload of a built-in's name is refused as well" grep -q 'may not call length() (a function defined in the database)' <<<"$out"
out=$(psqlw -Atc "SELECT definer_read()")
check "a SECURITY DEFINER function is refused (a write rule without it in functions)" grep -q 'may not call definer_read() (a SECURITY DEFINER function)' <<<"$out"
check "functions: the orders are all still there" test "$(pgtmp_psql -d policydb -Atc "SELECT count(*) FROM orders")" = 3
los=$(pgtmp_psql -d policydb -Atc "SELECT count(*) FROM pg_largeobject_metadata")
out=$(psqlr -Atc "SELECT lo_from_bytea(0, 'x')" -c "SELECT lo_create(0)")
check "large objects cannot be made through a read rule" test "$(pgtmp_psql -d policydb -Atc "SELECT count(*) FROM pg_largeobject_metadata")" = "$los"
coproc LISTENER { pgtmp_psql -d policydb -Atq 2>&1; }
echo "LISTEN pgw_ch; SELECT 'listening';" >&"${LISTENER[1]}"
read -r -t 10 line <&"${LISTENER[0]}"
out=$(PGPASSWORD= psqlr -Atc "SELECT pg_notify('pgw_ch', 'from-reader')")
check "pg_notify is refused (a built-in with side effects)" grep -q 'may not call pg_notify() (a built-in with side effects)' <<<"$out"
echo "SELECT 'after';" >&"${LISTENER[1]}"
got=""
while read -r -t 3 line <&"${LISTENER[0]}"; do got+="$line;"; [[ $line == after ]] && break; done
check "pg_notify: the listener got nothing" not_in from-reader "$got"
echo '\q' >&"${LISTENER[1]}"
out=$(psqlr -Atc "SELECT pg_advisory_lock(4242)" -c "SELECT pg_stat_get_activity(NULL)")
check "pg_advisory_lock is refused" grep -q 'may not call pg_advisory_lock()' <<<"$out"
check "pg_stat_get_activity is refused (another session's statements)" grep -q 'may not call pg_stat_get_activity() (a built-in that reads other sessions' <<<"$out"
check "no advisory lock was taken" test "$(pgtmp_psql -d policydb -Atc "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")" = 0
out=$(psqlr -Atc "SELECT set_config('work_mem', '1MB', false) FROM orders")
check "set_config beside a table read is refused" grep -q 'may not call set_config()' <<<"$out"
# FOR UPDATE under a read-only identity: refused, and another session's write does not wait
coproc LOCKER { psql -X "$R user=reader" -Atq 2>&1; }
echo "BEGIN; SELECT * FROM orders WHERE id = 1 FOR UPDATE; SELECT 'asked';" >&"${LOCKER[1]}"
got=""
while read -r -t 5 line <&"${LOCKER[0]}"; do got+="$line;"; [[ $line == asked ]] && break; done
check "SELECT ... FOR UPDATE is refused to a read-only identity" grep -q 'may not lock rows of public.orders' <<<"$got"
t0=$(date +%s%N)
pgtmp_psql -d policydb -Atc "SET lock_timeout = '2s'; UPDATE orders SET amount = amount WHERE id = 1" >/dev/null 2>&1
check "FOR UPDATE: another session's UPDATE did not wait for a lock" test $((($(date +%s%N) - t0) / 1000000)) -lt 1500
echo "ROLLBACK;" >&"${LOCKER[1]}"
echo '\q' >&"${LOCKER[1]}"

# --- standard_conforming_strings --------------------------------------------------------------
attack="SELECT 'x\\''; DROP TABLE orders; --'"
out=$(psqlw -c "SET standard_conforming_strings = off" -c "$attack")
check "SET standard_conforming_strings = off is refused" grep -q 'may not change standard_conforming_strings' <<<"$out"
out=$(PGOPTIONS="-c standard_conforming_strings=off" psqlw -c "$attack")
check "options=-c standard_conforming_strings=off is refused at start-up" grep -q 'FATAL:  pgward: identity writer may not change standard_conforming_strings' <<<"$out"
out=$(PGOPTIONS="--standard-conforming-strings=off" psqlw -c "$attack")
check "options=--standard-conforming-strings=off is refused at start-up" grep -q 'FATAL:  pgward' <<<"$out"
out=$(psqlw -c "SELECT set_config('standard_conforming_strings', 'off', false)" -c "$attack")
check "set_config('standard_conforming_strings', ...) is refused" grep -q 'may not change standard_conforming_strings' <<<"$out"
pgtmp_psql -q -c "ALTER ROLE postgres IN DATABASE policydb SET standard_conforming_strings = off" >/dev/null
out=$(psqlw -c "$attack")
check "a server reporting standard_conforming_strings off ends the session" grep -q 'reports standard_conforming_strings = off' <<<"$out"
pgtmp_psql -q -c "ALTER ROLE postgres IN DATABASE policydb RESET standard_conforming_strings" >/dev/null
check "the standard_conforming_strings attack leaves the table in place" test "$(pgtmp_psql -d policydb -Atc "SELECT count(*) FROM orders")" = 3
out=$(PGCLIENTENCODING=SJIS psqlr -c "SELECT 1")
check "client_encoding SJIS is refused at start-up" grep -q 'may not set client_encoding to SJIS' <<<"$out"
out=$(psqlr -c "SET client_encoding = 'BIG5'")
check "SET client_encoding = BIG5 is refused" grep -q 'may not set client_encoding to BIG5' <<<"$out"

# --- startup options as the server reads them ------------------------------------------------
pgtmp_psql -q -d policydb -c "CREATE TABLE secret.orders (id int, secret text); INSERT INTO secret.orders VALUES (42, 'the-secret-row')" >/dev/null
out=$(PGOPTIONS="-Ec search_path=secret" psqlr -Atc "SELECT * FROM orders")
check "options -Ec search_path=secret: the unqualified orders is judged as secret.orders (refused)" grep -q 'may not SELECT secret.orders' <<<"$out"
check "options -Ec search_path=secret: the secret row did not come back" not_in the-secret-row "$out"
out=$(PGOPTIONS="-e-role=postgres" psqlr -Atc "SELECT current_user")
check "options -e-role=x (combined switches) is refused at start-up as a role escape" grep -q 'FATAL:  pgward: identity reader may not change the session.s role' <<<"$out"
out=$(PGOPTIONS="--session-authorization=postgres" psqlr -Atc "SELECT 1")
check "options --session-authorization=x is refused at start-up" grep -q 'FATAL:  pgward: identity reader may not change the session.s role' <<<"$out"
out=$(PGOPTIONS="-c search_path" psqlr -Atc "SELECT 1")
check "options the server cannot read are refused with its own words" grep -q 'FATAL:  -c search_path requires a value' <<<"$out"
extra_opt='{"name": "optparse", "match": {"user": "optparse"}, "auth": "trust", "upstream": "main",
  "guardrails": {"role_escape": false, "server_copy": false, "server_files": false,
   "alter_system": false, "drop_database": false, "create_extension": false, "dblink": false,
   "terminate_backend": false, "code": false, "no_where": false, "parser_integrity": false,
   "superuser_settings": false},
  "rules": [{"action": "allow"}]}'
config "$extra_opt" >"$W/optparse.json"
out=$(PGPASSWORD=$(cat "$PGTMP_DIR/postgres.pw") python3 "$here/optdiff.py" "$CTL" "$W/optparse.json" optparse \
	"host=127.0.0.1 port=$PGTMP_PORT user=postgres dbname=policydb sslmode=disable" "${PGWARD_OPTDIFF_N:-150}")
printf '%s\n' "$out" | grep '^#'
check "the options differential against the server: $(grep -o '([0-9]* generated.*)' <<<"$out")" grep -q '^ok - ' <<<"$out"

# --- the startup packet as the server reads it: replication, settings only a superuser may make ---
SU="host=127.0.0.1 port=$PGTMP_PORT user=postgres dbname=policydb sslmode=disable"
out=$(PGPASSWORD=$(cat "$PGTMP_DIR/postgres.pw") python3 "$here/repldiff.py" "$CTL" "$W/policy.json" writer \
	127.0.0.1 "$PGTMP_PORT" postgres policydb 2>&1)
printf '%s\n' "$out" | grep '^#'
check "the replication differential against the server: $(grep -o '([0-9]* values.*)' <<<"$out")" grep -q '^ok - ' <<<"$out"
out=$(PGPASSWORD=$(cat "$PGTMP_DIR/postgres.pw") python3 "$here/gucdiff.py" "$CTL" "$SU" 2>&1)
printf '%s\n' "$out" | grep '^#'
check "the settings table equals the server's: $(grep -o 'pg_settings ([^)]*)' <<<"$out")" grep -q "^ok - pgward's settings table" <<<"$out"
check "a plain role may SET exactly the \"user\" settings: $(grep -o '([0-9]* names tried[^)]*)' <<<"$out")" grep -q '^ok - a plain role' <<<"$out"
walsenders() { pgtmp_psql -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender'"; }
for _ in $(seq 50); do [[ $(walsenders) == 0 ]] && break; sleep 0.1; done
raw() { # startup parameters as NAME=VALUE ... [-- SQL]: "refused SQLSTATE message" or the SQL's rows
	python3 - "$PORT" "$@" <<-'PY'
		import os, sys
		sys.path.insert(0, os.environ["PW_HERE"])
		import pgraw
		port, args = int(sys.argv[1]), sys.argv[2:]
		sql = args[args.index("--") + 1] if "--" in args else None
		params = [a.split("=", 1) for a in (args[:args.index("--")] if sql else args)]
		try:
		    c = pgraw.Conn("127.0.0.1", port, params)
		except pgraw.Error as e:
		    print("refused", e.fields.get("C"), e.fields.get("M"))
		    sys.exit()
		print("|".join(str(v) for r in (c.query(sql) if sql else []) for v in r) or "connected")
		c.close()
	PY
}
export PW_HERE=$here
for v in t y ye TRu on 1 database DATABASE ""; do
	out=$(raw user=writer database=policydb "replication=$v" -- "SELECT 1")
	check "through pgwardd: replication=\"$v\" is refused with 0A000" grep -q '^refused 0A000 pgward: replication connections are not supported' <<<"$out"
done
check "through pgwardd: no walsender was started on the server" test "$(walsenders)" = 0
for v in off f no 0; do
	check "through pgwardd: replication=$v is an ordinary session" test "$(raw user=writer database=policydb "replication=$v" -- "SELECT 1")" = 1
done
for o in "-c session_replication_role=replica" "-c log_statement=none" "--session-replication-role=replica" "-c lc_messages=C" "-P"; do
	out=$(raw user=writer database=policydb "options=$o" -- "SELECT 1")
	check "options $o is refused at start-up with 42501 (guardrail superuser_settings)" grep -q "^refused 42501 pgward: identity writer may not set .* at start-up (PostgreSQL context .*(guardrail superuser_settings)" <<<"$out"
done
out=$(raw user=writer database=policydb "session_replication_role=replica" -- "SELECT 1")
check "a startup parameter session_replication_role=replica is refused with 42501" grep -q "^refused 42501 .*may not set session_replication_role at start-up" <<<"$out"
out=$(raw user=writer database=policydb "options=-c app.tenant=5" -- "SELECT 1")
check "options -c app.tenant=5 (a custom setting) is refused at start-up, saying to SET it after connecting" grep -q "^refused 42501 .*may not set app.tenant at start-up (.*SET it after connecting)" <<<"$out"
check "through pgwardd: options -c work_mem=3MB (a \"user\" setting) still works" test "$(raw user=writer database=policydb "options=-c work_mem=3MB" -- "SHOW work_mem")" = 3MB
logst=$(pgtmp_psql -Atc "SHOW log_statement")
[[ $logst != none ]] || logst=all # (a value the attempt below does not set)
pgtmp_psql -q -c "ALTER ROLE postgres IN DATABASE policydb SET log_statement = '$logst'" >/dev/null
out=$(psqlw -Atc "SET session_replication_role = replica" -c "SHOW session_replication_role" -c "SELECT set_config('log_statement', 'none', false)" -c "SHOW log_statement")
pgtmp_psql -q -c "ALTER ROLE postgres IN DATABASE policydb RESET log_statement" >/dev/null
check "SET session_replication_role = replica is refused (guardrail superuser_settings)" grep -q 'may not set session_replication_role (PostgreSQL context "superuser": only "user" settings may be made) (guardrail superuser_settings)' <<<"$out"
check "set_config('log_statement', 'none') is refused" grep -q 'may not set log_statement' <<<"$out"
check "on the server the session's session_replication_role is still origin" grep -qx origin <<<"$out"
check "on the server the session's log_statement is still $logst" grep -qx "$logst" <<<"$out"
out=$(psqlw -v VERBOSITY=verbose -c "SET LOCAL log_statement = 'none'")
check "the SQL refusal carries SQLSTATE 42501" grep -q 'ERROR:  42501: pgward: identity writer may not set log_statement' <<<"$out"
out=$(psqlw -Atc "SET app.tenant = '5'" -c "SHOW app.tenant" -c "RESET session_replication_role" -c "SHOW session_replication_role")
check "SET app.tenant = '5' (a custom setting) is allowed in a session and set on the server" test "$(sed -n 2p <<<"$out")" = 5
check "RESET session_replication_role stays allowed" test "$(sed -n 4p <<<"$out")" = origin
check "pgwardd warned that upstream main logs in as a superuser" grep -q 'warn  upstream main logs in as superuser postgres: .*least-privilege login role' "$W/pgwardd.log"
check "and warned once" test "$(grep -c 'upstream main logs in as superuser' "$W/pgwardd.log")" = 1

# --- the upstream must prove it knows the password ----------------------------------------------
main_pid=$PGWARDD_PID
FAKE=$(pw_free_port)
PORT2=$(pw_free_port)
cat >"$W/fake.json" <<EOF
{"listen": [{"host": "127.0.0.1", "port": $PORT2}], "workers": 1,
 "upstreams": {"fake": {"host": "127.0.0.1", "port": $FAKE, "user": "app",
                        "password_file": "$PGTMP_DIR/postgres.pw", "sslmode": "disable"}},
 "identities": [${extra_opt//optparse/app}]}
EOF
sed -i 's/"upstream": "main"/"upstream": "fake"/' "$W/fake.json"
pw_start_pgwardd "$W/fake.json" "$W/fake.log" || echo "not ok - the second pgwardd did not start"
for mode in skip-final bad-signature; do
	python3 "$here/fake_upstream.py" "$FAKE" "$mode" 1 >"$W/fake.$mode.out" 2>&1 &
	fake=$!
	pw_wait_log "$W/fake.$mode.out" ready 5 >/dev/null
	out=$(psql -X "host=127.0.0.1 port=$PORT2 user=app dbname=x sslmode=disable" -Atc "SELECT 1" 2>&1)
	wait "$fake" 2>/dev/null
	case $mode in
	skip-final) want='server ended SCRAM without proving it knows the password' ;;
	*) want='signature does not verify' ;;
	esac
	check "an upstream that $mode: the login is refused ($want)" grep -q "cannot log in to upstream \"fake\": .*$want" <<<"$out"
	check "an upstream that $mode: nothing of it reached the client" not_in leaked "$out"
done
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID" 2>/dev/null
PGWARDD_PID=$main_pid

# --- the session's real search_path: role defaults and a schema named after the login ---------
pgtmp_psql -q -d policydb -c "CREATE SCHEMA postgres; CREATE TABLE postgres.customers (id int, name text, email text); INSERT INTO postgres.customers VALUES (7, 'x', 'the-secret-email')" >/dev/null
out=$(psqlr -Atc "SELECT email FROM customers")
check "a schema named after the login role: unqualified customers is refused (postgres.customers is a candidate)" grep -q 'may not SELECT postgres.customers' <<<"$out"
check "a schema named after the login role: its row did not come back" not_in the-secret-email "$out"
out=$(psqlr -Atc "SELECT count(*) FROM public.customers")
check "a schema named after the login role: qualified names still read" test "$out" = 2
pgtmp_psql -q -d policydb -c "DROP SCHEMA postgres CASCADE" >/dev/null
pgtmp_psql -q -c "ALTER ROLE postgres IN DATABASE policydb SET search_path = secret, public" >/dev/null
out=$(psqlr -Atc "SELECT * FROM orders")
check "a role default search_path (secret, public): unqualified orders is refused" grep -q 'may not SELECT secret.orders' <<<"$out"
check "a role default search_path: the secret row did not come back" not_in the-secret-row "$out"
pgtmp_psql -q -c "ALTER ROLE postgres IN DATABASE policydb RESET search_path" >/dev/null
out=$(psqlr -Atc "SELECT count(*) FROM orders")
check "without it, unqualified orders reads public.orders again" test "$out" = 3
pgtmp_psql -q -d policydb -c "DROP TABLE secret.orders" >/dev/null

# --- FunctionCall: libpq's large-object calls ---------------------------------------------------
out=$(psqlw -c "\\lo_import /etc/hostname")
check "the FunctionCall message is refused (guardrail server_files)" grep -q 'may not use the FunctionCall message' <<<"$out"

# --- session-level rules ------------------------------------------------------------------------
now_h=$(date -u +%H)
other_h=$(printf '%02d' $(((10#$now_h + 12) % 24)))
extra='{"name": "windowed", "match": {"user": "windowed"}, "auth": "trust", "upstream": "main",
  "windows": [{"days": "mon-sun", "from": "'$other_h':00", "to": "'$other_h':30"}], "rules": [{"action": "allow"}]},
 {"name": "one-at-a-time", "match": {"user": "single"}, "auth": "trust", "upstream": "main",
  "max_sessions": 1, "rules": [{"action": "allow"}]},
 {"name": "elsewhere", "match": {"user": "elsewhere"}, "auth": "trust", "upstream": "main",
  "databases": ["reporting_*"], "rules": [{"action": "allow"}]},
 {"name": "scoped", "match": {"user": "scoped"}, "auth": "trust", "upstream": "main",
  "role": "app_reader", "rules": [{"action": "allow", "class": ["select"], "functions": "public.pgw_escape"}]},
 '"${extra_opt//optparse/allowall}"
config "$extra" >"$W/policy.json"
kill -HUP "$PGWARDD_PID"
pw_wait_log "$W/pgwardd.log" 'configuration reloaded' >/dev/null
# the end of a backend reaches the client even when it comes with the backend's last message
out=$(ADMIN_CMD="PGPASSWORD=$(cat "$PGTMP_DIR/postgres.pw") psql -X 'host=127.0.0.1 port=$PGTMP_PORT user=postgres dbname=policydb sslmode=disable' -qc 'SELECT pg_terminate_backend(%d)'" \
	python3 "$here/eof_race.py" "$PORT" 5 "$PGWARDD_PID" allowall policydb 2>&1)
check "a terminated backend's FATAL and close reach a listening client (pgwardd busy meanwhile): $out" test "$out" = "hung 0 of 5"
# a client killed mid-statement: the statement is cancelled and its backend ends at once
gone_backend() { # SQL: wait up to 3 s until no backend runs it
	for _ in $(seq 30); do
		[[ $(pgtmp_psql -Atc "SELECT count(*) FROM pg_stat_activity WHERE query = '$1'") == 0 ]] && return 0
		sleep 0.1
	done
	return 1
}
python3 "$here/client_gone.py" "$PORT" allowall policydb "SELECT pg_sleep(31)" >/dev/null
check "a client killed mid-statement: its statement is cancelled, its backend gone within 3 s" gone_backend "SELECT pg_sleep(31)"
out=$(psql -X "$R user=windowed" -c "SELECT 1" 2>&1)
check "outside its time window an identity cannot connect" grep -q 'may connect only within its time windows' <<<"$out"
out=$(psql -X "$R user=elsewhere" -c "SELECT 1" 2>&1)
check "a database outside the identity's list is refused" grep -q 'may not use database "policydb"' <<<"$out"
psql -X "$R user=single" -c "SELECT pg_sleep(3)" >/dev/null 2>&1 &
holder=$!
for _ in $(seq 30); do
	[[ $(pgtmp_psql -Atc "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(3)%'") = 1 ]] && break
	sleep 0.1
done
out=$(psql -X "$R user=single" -c "SELECT 1" 2>&1)
check "max_sessions: the second session is refused (53300)" grep -q 'has reached its max_sessions (1)' <<<"$out"
wait $holder
out=$(psql -X "$R user=single" -Atc "SELECT 'again'" 2>&1)
check "max_sessions: a slot is free again once the first session ends" grep -q again <<<"$out"
out=$(psql -X "$R user=scoped" -Atc "SELECT current_user" -c "SELECT count(*) FROM orders" 2>&1)
check "a fixed role is in place before the first statement" test "$(head -1 <<<"$out")" = app_reader
check "the fixed role's own privileges apply" test "$(sed -n 2p <<<"$out")" = 3
# a function (named by the rule) that leaves the role: the server says so, the session ends
pgtmp_psql -q -d policydb -c "CREATE OR REPLACE FUNCTION pgw_escape() RETURNS text LANGUAGE plpgsql AS \$\$BEGIN SET ROLE postgres; RETURN current_user; END\$\$" >/dev/null
out=$(psql -X "$R user=scoped" -Atc "SELECT pgw_escape()" 2>&1)
check "a function made after the catalog was read: refused at first (not known yet)" grep -q "may not call pgw_escape() (not a function pgward's catalog" <<<"$out"
sleep 1.5 # the refusal had the catalog read again
out=$(psql -X "$R user=scoped" -Atc "SELECT pgw_escape()" -c "SELECT count(*) FROM secret.keys" 2>&1)
check "a fixed role left (is_superuser reported on): the session ends" grep -q 'left its role app_reader' <<<"$out"
check "a fixed role left: nothing more runs as the superuser" not_in '^1$' "$out"

# --- JWT identities --------------------------------------------------------------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/jwt.key" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/other.key" 2>/dev/null
mint() { # claims-json [kid] [key] [alg]: a compact JWS signed with openssl
	python3 - "$1" "${2:-k1}" "${3:-$W/jwt.key}" "${4:-RS256}" <<-'PY'
		import base64, json, subprocess, sys, time
		claims, kid, key, alg = sys.argv[1:5]
		b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
		now = int(time.time())
		c = json.loads(claims.replace("NOW", str(now)))
		head = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kid}).encode())
		body = b64(json.dumps(c).encode())
		signing = (head + "." + body).encode()
		sig = b"" if alg == "none" else subprocess.run(
		    ["openssl", "dgst", "-sha256", "-sign", key], input=signing,
		    capture_output=True, check=True).stdout
		print(head + "." + body + "." + b64(sig))
	PY
}
python3 - "$W/jwt.key" >"$W/jwks.json" <<-'PY'
	import base64, json, subprocess, sys
	mod = subprocess.run(["openssl", "rsa", "-in", sys.argv[1], "-noout", "-modulus"],
	                     capture_output=True, text=True, check=True).stdout.split("=")[1].strip()
	b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
	n = bytes.fromhex(mod)
	print(json.dumps({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
	                            "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}]}))
PY
jwt_extra='{"name": "ci-bot", "match": {"user": "bot", "group": "ci"}, "auth": "jwt",
  "upstream": "main", "rules": [{"action": "allow", "class": ["select"]}]},
 {"name": "any-bot", "match": {"user": "bot", "sub": "agent-*"}, "auth": "jwt",
  "upstream": "main", "rules": [{"action": "deny"}]}'
config "$jwt_extra" '{"jwt": {"jwks_file": "'"$W/jwks.json"'", "issuer": "https://issuer.test",
  "audience": "pgward", "leeway_seconds": 5}}' >"$W/policy.json"
check "a policy with a jwt section passes policy check" "$CTL" policy check "$W/policy.json"
kill -HUP "$PGWARDD_PID"
sleep 0.3
pw_wait_log "$W/pgwardd.log" 'configuration reloaded' >/dev/null
good='{"iss": "https://issuer.test", "aud": "pgward", "sub": "agent-7", "exp": NOW + 300, "groups": ["ci", "dev"]}'
good=${good//NOW + 300/$(($(date +%s) + 300))}
token_try() { # token: psql's output
	PGPASSWORD=$1 psql -X "$R user=bot" -Atc "SELECT 'in as ' || current_user" 2>&1
}
out=$(token_try "$(mint "$good")")
check "JWT: a valid token logs in" grep -q 'in as postgres' <<<"$out"
check "JWT: the groups claim picks the identity" grep -q 'identity=ci-bot.*sub="agent-7"' "$W/pgwardd.log"
nogroup='{"iss": "https://issuer.test", "aud": "pgward", "sub": "agent-8", "exp": '$(($(date +%s) + 300))'}'
out=$(PGPASSWORD=$(mint "$nogroup") psql -X "$R user=bot" -Atc "SELECT 1" 2>&1)
check "JWT: sub picks the next identity when the group does not match" grep -q 'identity any-bot may not' <<<"$out"
jwt_bad() { # name claims-json [kid] [key] [alg] log-pattern
	local out
	out=$(token_try "$(mint "$2" "${3:-k1}" "${4:-$W/jwt.key}" "${5:-RS256}")")
	check "JWT: $1 is refused with 28000" grep -q 'FATAL:  pgward: token authentication failed for user "bot"' <<<"$out"
	check "JWT: $1: the reason is in the server log" pw_wait_log "$W/pgwardd.log" "$6" 3
	check "JWT: $1: the reason is not told to the client" bash -c "! grep -qi -- '$6' <<<'$out'"
}
t=$(date +%s)
jwt_bad "an expired token" '{"iss": "https://issuer.test", "aud": "pgward", "sub": "agent-1", "exp": '$((t - 60))', "groups": ["ci"]}' k1 "" RS256 'expired'
jwt_bad "a token not yet valid" '{"iss": "https://issuer.test", "aud": "pgward", "sub": "agent-1", "nbf": '$((t + 600))', "exp": '$((t + 900))', "groups": ["ci"]}' k1 "" RS256 'not valid before\|not yet valid\|nbf'
jwt_bad "a wrong issuer" '{"iss": "https://evil.test", "aud": "pgward", "sub": "agent-1", "exp": '$((t + 300))', "groups": ["ci"]}' k1 "" RS256 'issuer'
jwt_bad "a wrong audience" '{"iss": "https://issuer.test", "aud": "other", "sub": "agent-1", "exp": '$((t + 300))', "groups": ["ci"]}' k1 "" RS256 'audience'
jwt_bad "a bad signature" "$good" k1 "$W/other.key" RS256 'signature'
jwt_bad "alg none" "$good" k1 "" none 'none'
jwt_bad "an unknown kid" "$good" k9 "" RS256 'unknown key id'
out=$(PGPASSWORD=not-a-token psql -X "$R user=bot" -Atc "SELECT 1" 2>&1)
check "JWT: a password that is no token is refused" grep -q 'token authentication failed' <<<"$out"

# --- reload keeps live sessions on the policy they started with -------------------------------
coproc LIVE { psql -X "$R user=reader" -Atq 2>&1; }
echo "SELECT 'before', count(*) FROM orders;" >&"${LIVE[1]}"
read -r -t 10 line <&"${LIVE[0]}"
check "a live session reads before the reload" test "$line" = "before|3"
python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
for i in c["identities"]:
    for r in i.get("rules", []):
        if i["name"] == "reader" and r.get("name") == "read-public":
            r["relations"] = ["pg_catalog.*"]
print(json.dumps(c))' "$W/policy.json" >"$W/strict.json"
cp "$W/strict.json" "$W/policy.json"
kill -HUP "$PGWARDD_PID"
sleep 0.3
pw_wait_log "$W/pgwardd.log" 'configuration reloaded' >/dev/null
echo "SELECT 'after', count(*) FROM orders;" >&"${LIVE[1]}"
read -r -t 10 line <&"${LIVE[0]}"
check "after SIGHUP the live session keeps its policy" test "$line" = "after|3"
out=$(psqlr -c "SELECT count(*) FROM orders")
check "after SIGHUP a new session gets the new policy" grep -q 'may not SELECT public.orders' <<<"$out"
echo '\q' >&"${LIVE[1]}"
wait "${LIVE_PID:-}" 2>/dev/null
echo '{"identities": [' >"$W/broken.json"
cp "$W/broken.json" "$W/policy.json"
kill -HUP "$PGWARDD_PID"
pw_wait_log "$W/pgwardd.log" 'reload failed, keeping the current configuration' >/dev/null
out=$(psqlr -Atc "SELECT 'serving'" -c "SELECT count(*) FROM orders")
check "after a bad policy file pgwardd still serves" grep -q serving <<<"$out"
check "after a bad policy file the previous policy stays" grep -q 'may not SELECT public.orders' <<<"$out"

# --- just-in-time roles -----------------------------------------------------------------------
jit_extra='{"name": "jitter", "match": {"user": "jitter"}, "auth": "trust", "upstream": "main",
  "jit_role": {"grants": [{"privileges": ["SELECT"], "table": "public.orders"}]},
  "rules": [{"action": "allow", "class": ["select"], "functions": "pg_catalog.pg_sleep"}]}'
config "$jit_extra" >"$W/policy.json"
kill -HUP "$PGWARDD_PID"
sleep 0.3
pw_wait_log "$W/pgwardd.log" 'configuration reloaded' >/dev/null
jit_roles() { pgtmp_psql -Atc "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'pgward\_jit\_%'"; }
jit_gone() { # wait until no JIT role is left
	for _ in $(seq 100); do
		[[ $(jit_roles) == 0 ]] && return 0
		sleep 0.1
	done
	return 1
}
check "no just-in-time role before any session" test "$(jit_roles)" = 0
coproc JIT { psql -X "$R user=jitter" -Atq 2>&1; }
echo "SELECT current_user;" >&"${JIT[1]}"
read -r -t 10 jrole <&"${JIT[0]}"
check "the session runs as a just-in-time role" grep -q '^pgward_jit_' <<<"$jrole"
check "the role exists while the session lives" test "$(pgtmp_psql -Atc "SELECT count(*) FROM pg_roles WHERE rolname = '$jrole' AND NOT rolcanlogin")" = 1
echo "SELECT count(*) FROM orders;" >&"${JIT[1]}"
read -r -t 10 line <&"${JIT[0]}"
check "the role has its grant (SELECT on orders)" test "$line" = 3
echo "SELECT count(*) FROM customers;" >&"${JIT[1]}"
read -r -t 10 line <&"${JIT[0]}"
check "the role has nothing else (the server refuses customers)" grep -q 'permission denied for table customers' <<<"$line"
echo "DISCARD ALL;" >&"${JIT[1]}"
read -r -t 10 line <&"${JIT[0]}"
check "DISCARD ALL is refused in a just-in-time session (a role escape)" grep -q 'may not run DISCARD ALL' <<<"$line"
echo "SELECT current_user;" >&"${JIT[1]}"
read -r -t 10 line <&"${JIT[0]}"
check "the session still runs as its just-in-time role" test "$line" = "$jrole"
echo "SELECT count(*) FROM customers;" >&"${JIT[1]}"
read -r -t 10 line <&"${JIT[0]}"
check "and still cannot read what its role may not" grep -q 'permission denied for table customers' <<<"$line"
echo '\q' >&"${JIT[1]}"
wait "${JIT_PID:-}" 2>/dev/null
check "the role is dropped when the session ends" jit_gone
python3 "$here/client_gone.py" "$PORT" jitter policydb "SELECT pg_sleep(32)" >/dev/null
t0=$(date +%s)
check "a JIT client killed mid-statement: its backend gone within 3 s" gone_backend "SELECT pg_sleep(32)"
jit_gone
check "and its role dropped at once, not after the 10 s half-close grace ($(($(date +%s) - t0)) s)" test $(($(date +%s) - t0)) -lt 6
psql -X "$R user=jitter" -Atc "SELECT pg_sleep(60)" >/dev/null 2>&1 &
victim=$!
for _ in $(seq 50); do [[ $(jit_roles) == 1 ]] && break; sleep 0.1; done
check "a second session has its own role" test "$(jit_roles)" = 1
kill -KILL "$victim"
wait "$victim" 2>/dev/null
check "after SIGKILL of the client its role is dropped" jit_gone
check "and its backend is ended" bash -c "for i in \$(seq 50); do [[ \$(PGPASSWORD=\$(cat $PGTMP_DIR/postgres.pw) psql -X -h 127.0.0.1 -p $PGTMP_PORT -U postgres -d postgres -Atc \"SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'\") == 0 ]] && exit 0; sleep 0.1; done; exit 1"
coproc JIT2 { psql -X "$R user=jitter" -Atq 2>&1; }
echo "SELECT current_user;" >&"${JIT2[1]}"
read -r -t 10 jrole <&"${JIT2[0]}"
kill -KILL "$PGWARDD_PID"
wait "${PGWARDD_PID:-}" 2>/dev/null
check "after SIGKILL of pgwardd the role is left behind" test "$(jit_roles)" = 1
echo '\q' >&"${JIT2[1]}"
wait "${JIT2_PID:-}" 2>/dev/null
pw_start_pgwardd "$W/policy.json" "$W/pgwardd2.log" || echo "not ok - pgwardd did not restart"
check "the next pgwardd's start-up sweep drops it" jit_gone

# pgwardd's own client (the janitor's connections), against this cluster
run_tap env PGWARD_PGCONN_PORT="$PGTMP_PORT" PGWARD_PGCONN_USER=postgres \
	PGWARD_PGCONN_PWFILE="$PGTMP_DIR/postgres.pw" PGWARD_PGCONN_CA="$PGTMP_CA" \
	PGWARD_PGCONN_SOCKDIR="$PGTMP_SOCKDIR" PGWARD_PGCONN_PWDIR="$PGTMP_DIR" "$BUILD/tests/test_pgconn"

# --- pgwardctl policy check: every error, with its JSON path --------------------------------------
cat >"$W/bad.json" <<EOF
{"listen": [{"host": "127.0.0.1", "port": 1}],
 "upstreams": {"u": {"host": "127.0.0.1", "user": "x"}},
 "identities": [
  {"name": "a", "auth": "trust", "upstream": "u",
   "rules": [{"action": "alow"}, {"action": "deny", "class": ["selct"]}, {"action": "deny", "relations": ["orders"]}]},
  {"name": "b", "auth": "trust", "upstream": "u", "windows": [{"from": "25:00", "to": "10:00"}],
   "guardrails": {"role_escpe": false}}
 ]}
EOF
out=$("$CTL" policy check "$W/bad.json" 2>&1)
rc=$?
check "policy check fails on a bad file (exit 1)" test $rc = 1
check "policy check names rules[0].action" grep -q '\$.identities\[0\].rules\[0\].action: expected one of allow, deny, approve, mask, got "alow"' <<<"$out"
check "policy check names rules[1].class[0]" grep -q '\$.identities\[0\].rules\[1\].class\[0\]: unknown command class "selct"' <<<"$out"
check "policy check names rules[2].relations[0]" grep -q '\$.identities\[0\].rules\[2\].relations\[0\]: expected "schema.name"' <<<"$out"
check "policy check goes on to the next identity" grep -q '\$.identities\[1\].windows\[0\].from' <<<"$out"
check "policy check goes on past a bad window to the guardrails" grep -q '\$.identities\[1\].guardrails.role_escpe: unknown key' <<<"$out"
check "policy check reports the count" grep -q '5 errors' <<<"$out"
out=$("$CTL" -j policy check "$W/bad.json")
check "policy check -j lists the errors" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert not d["valid"] and len(d["errors"]) == 5' "$out"

finish
