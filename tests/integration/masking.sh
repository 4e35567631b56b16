#!/usr/bin/env bash
# The masking bypass corpus end to end: a throwaway PostgreSQL 15 with tests/masking/schema.sql
# (a table of known secrets), pgwardd with an identity "masked" (mask rules on every secret
# column, content detectors on every text column) and an identity "plain" (the same allowing
# rule, no masks), then every line of tests/masking/corpus.tsv as "masked", each on a new
# connection, in passes: psql (simple protocol, one Query per line, verbose errors, every
# context), tests/integration/mask_client with binary results and with text results (extended
# protocol for a single statement, one Query for several; every connection PQtraced), and
# mask_client running the statements of a multi-statement line one by one through the extended
# protocol with binary results ("bs": cursors' FETCH, EXECUTE, a statement after a SET, each
# judged in the state the one before left). For each line: no secret of
# tests/masking/secrets.txt in any byte the client received (psql's output, the trace,
# mask_client's decoded results, COPY data, notices, errors, notifications), in any of the forms
# a query could turn it into (any case, reversed, digits alone, a number in text or binary,
# hex, base64, md5, sha256); the verdict the line expects (ok, deny, any), and the text an
# "ok+TEXT" line must show. After each pass, on a fresh database and pgwardd each,
# straight against the server: no secret copied anywhere in the database, people unchanged.
# Controls: "plain" reading people does show the secrets to the same scan (in psql's output,
# in binary and text results and in their traces), every secret is really in the data, and the
# corpus itself holds none; the hash strategy gives the same value in two sessions and through
# binary results, and another value under another key (pgwardd restarted with a second key).
#
# Standalone: BUILD=build-t bash tests/integration/masking.sh
# Environment: MASK_IDENTITY (default masked) runs the corpus as another identity (plain: to
# see that the harness catches leaks); MASK_MODES (default "psql b t bs"; also "ts": the split
# run with text results); MASK_KEEP=DIR keeps the work directory there (outputs, traces,
# dumps, report.txt with every offender).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CLIENT=$BUILD/tests/mask_client
M=$top/tests/masking
PY=/usr/bin/python3
IDENT=${MASK_IDENTITY:-masked}
read -r -a MODES <<<"${MASK_MODES:-psql b t bs}"

# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"

keep_work() {
	if [[ -n ${MASK_KEEP:-} && -n ${W:-} && -d $W ]]; then
		mkdir -p "$MASK_KEEP" && cp -a "$W/." "$MASK_KEEP/"
	fi
}
trap 'keep_work; pw_cleanup' EXIT
export PGCLIENTENCODING=UTF8
unset PGOPTIONS PGSERVICE
for f in "$CLIENT" "$BUILD/pgwardd" "$BUILD/pgwardctl"; do
	if [[ ! -x $f ]]; then
		echo "not ok - $f is missing (make BUILD=... all tests)"
		echo "1..1"
		exit 1
	fi
done
PGTMP_QUIET=1 pgtmp_start masking >/dev/null || {
	echo "not ok - throwaway cluster did not start"
	echo "1..1"
	exit 1
}
# (pgtmp_start chained its cluster's removal first: keep the work directory before it)
trap 'keep_work; pw_cleanup; pgtmp_stop_all' EXIT
W=$PGTMP_DIR/pgward
mkdir -p "$W"
PORT=$(pw_free_port)
(umask 077 && head -c 64 /dev/urandom >"$W/key1" && head -c 64 /dev/urandom >"$W/key2")
conn() { echo "host=127.0.0.1 port=$PORT user=$1 dbname=maskdb sslmode=disable"; }

# --- the scanner: every form of every secret, looked for in captured bytes ---------------------
cat >"$W/scan.py" <<'PY'
import base64, hashlib, json, os, re, sys

def secrets(path):
    return [l.rstrip("\n") for l in open(path, encoding="utf-8")
            if l.strip() and not l.startswith("#")]

def esc(b, signed):
    """bytes as PQtrace prints them (isprint in the C locale, else \\xHH; libpq formats a
    plain char, so a byte >= 0x80 may come out sign-extended) and as mask_client does"""
    out = ""
    for x in b:
        if 0x20 <= x < 0x7f:
            out += chr(x)
        elif signed and x >= 0x80:
            out += "\\x%08x" % (x | 0xFFFFFF00)
        else:
            out += "\\x%02x" % x
    return out.encode()

def forms(secret):
    """(text forms: matched in lower case, raw forms: matched exactly) -> what each form is"""
    s = secret.encode()
    text, raw = {}, {}
    def t(p, why):
        if len(p) >= 6:
            text.setdefault(p.lower(), why)
    t(s, "as is")
    t(s[::-1], "reversed")
    if re.fullmatch(rb"[0-9 +\-]+", s):
        d = re.sub(rb"\D", b"", s)
        if len(d) >= 8:
            t(d, "digits only")
            t(d[::-1], "digits reversed")
            v = int(d)
            t(str(v).encode(), "as a number")
            for size in (4, 8):
                if v < 1 << (8 * size - 1):
                    b = v.to_bytes(size, "big")
                    if any(x < 0x20 or x >= 0x7f for x in b):
                        raw[b] = "int%d binary" % (8 * size)
                    raw.setdefault(esc(b, True), "int%d binary, escaped" % (8 * size))
                    raw.setdefault(esc(b, False), "int%d binary, escaped" % (8 * size))
                    t(b.hex().encode(), "int%d binary in hex" % (8 * size))
    t(s.hex().encode(), "hex")
    for a in range(3):
        e = base64.b64encode(b"\0" * a + s)
        t(e[4 if a else 0:(a + len(s)) // 3 * 4], "base64")
    t(hashlib.md5(s).hexdigest().encode(), "md5")
    t(hashlib.sha256(s).hexdigest().encode(), "sha256")
    return text, raw

def scanner(path):
    table = []
    for sec in secrets(path):
        text, raw = forms(sec)
        table += [(p, False, sec, why) for p, why in text.items()]
        table += [(p, True, sec, why) for p, why in raw.items()]
    def scan(data):
        low = data.lower()
        return sorted({(sec, why) for p, exact, sec, why in table if p in (data if exact else low)})
    return scan

def corpus(path):
    """[(category, expect, sql)]; raises on a malformed line"""
    out, cat = [], "-"
    for no, line in enumerate(open(path, encoding="utf-8"), 1):
        line = line.rstrip("\n")
        if line.startswith("## "):
            cat = line[3:].split(":")[0].strip()
            continue
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not (parts[0] in ("ok", "deny", "any") or
                                   parts[0].startswith("ok+") and len(parts[0]) > 3):
            raise SystemExit("corpus.tsv:%d: expected EXPECT<TAB>SQL, got %r" % (no, line))
        out.append((cat, parts[0], parts[1]))
    return out

def segments(path):
    """mask_client's stdout or trace, split at its "=== line N ===" lines: {N: bytes}"""
    data = open(path, "rb").read() if os.path.exists(path) else b""
    out, cur, start = {}, None, 0
    for m in re.finditer(rb"^=== line (\d+) ===\n", data, re.M):
        if cur is not None:
            out[cur] = out.get(cur, b"") + data[start:m.start()]
        cur, start = int(m.group(1)), m.end()
    if cur is not None:
        out[cur] = out.get(cur, b"") + data[start:]
    return out

def psql_verdict(out):
    if re.search(rb"^psql: error:", out, re.M):
        return "fail connect"
    errs = re.findall(rb"^(?:ERROR|FATAL|PANIC):  ([0-9A-Z]{5}): (.*)$", out, re.M)
    if any(c == b"42501" and m.startswith(b"pgward:") for c, m in errs):
        return "deny"
    return "error " + errs[0][0].decode() if errs else "ok"

def verdict_ok(expect, got):
    if got.startswith("fail"):
        return False
    if expect == "any":
        return True
    return got == ("deny" if expect == "deny" else "ok")

def short(sql, n=110):
    return sql if len(sql) <= n else sql[:n - 3] + "..."

def report(secrets_path, corpus_path, work, ident, modes):
    scan = scanner(secrets_path)
    lines = corpus(corpus_path)
    cats = []
    for c, _, _ in lines:
        if c not in cats:
            cats.append(c)
    leaks = {c: [] for c in cats}
    bad = {c: [] for c in cats}
    counts = {m: {} for m in modes}
    for m in modes:
        if m == "psql":
            caps = {}
            for i in range(1, len(lines) + 1):
                p = os.path.join(work, "psql.%s" % ident, str(i))
                caps[i] = {"psql output": open(p, "rb").read() if os.path.exists(p) else b""}
            verdicts = {i: psql_verdict(caps[i]["psql output"]) for i in caps}
            shown = {i: caps[i]["psql output"] for i in caps}
        else:
            out = segments(os.path.join(work, "out.%s.%s" % (m, ident)))
            trace = segments(os.path.join(work, "trace.%s.%s" % (m, ident)))
            vpath = os.path.join(work, "verdicts.%s.%s" % (m, ident))
            vl = open(vpath, encoding="utf-8", errors="replace").read().splitlines() \
                if os.path.exists(vpath) else []
            caps = {i: {"%s results" % m: out.get(i, b""), "%s trace" % m: trace.get(i, b"")}
                    for i in range(1, len(lines) + 1)}
            verdicts = {i: vl[i - 1] if i <= len(vl) else "fail (no verdict)" for i in caps}
            # (what the client got: without the statement mask_client prints first)
            shown = {i: out.get(i, b"").partition(b"\n")[2] for i in caps}
        for i, (cat, expect, sql) in enumerate(lines, 1):
            got = verdicts[i]
            key = got.split(" ")[0]
            counts[m][key] = counts[m].get(key, 0) + 1
            for where, data in caps[i].items():
                found = scan(data)
                if found:
                    leaks[cat].append("[%s] line %d: %s <- %s" % (where, i, short(sql), "; ".join(
                        "%s (%s)" % f for f in found[:3]) + (" ..." if len(found) > 3 else "")))
            if not verdict_ok(expect.split("+")[0], got):
                bad[cat].append("[%s] line %d: expected %s, got %s: %s" % (
                    m, i, expect.split("+")[0], got, short(sql)))
            elif expect.startswith("ok+") and expect[3:].encode() not in shown[i]:
                bad[cat].append("[%s] line %d: %r not shown: %s" % (m, i, expect[3:], short(sql)))
    for m in modes:
        print("COMMENT\tverdicts of the %s pass as %s: %s" % (m, ident, ", ".join(
            "%s %d" % kv for kv in sorted(counts[m].items()))))
    for c in cats:
        n = sum(1 for l in lines if l[0] == c)
        print("CHECK\t%s: no secret reaches the client (%d statements; %s)" % (
            c, n, ", ".join(modes)))
        for o in leaks[c]:
            print("OFF\t" + o)
        print("CHECK\t%s: verdicts as expected (%d statements; %s)" % (c, n, ", ".join(modes)))
        for o in bad[c]:
            print("OFF\t" + o)

def main():
    cmd = sys.argv[1]
    if cmd == "texts":  # corpus -> the SQL texts, one a line
        for _, _, sql in corpus(sys.argv[2]):
            print(sql)
    elif cmd == "clean":  # no corpus line holds a secret
        scan, n = scanner(sys.argv[2]), 0
        for i, (_, _, sql) in enumerate(corpus(sys.argv[3]), 1):
            for f in scan(sql.encode()):
                print("line %d holds %s (%s): %s" % ((i,) + f + (sql,)), file=sys.stderr)
                n += 1
        sys.exit(1 if n else 0)
    elif cmd == "found":  # FILE [N]: the secrets in FILE (or in its line N segment); 1: none
        data = open(sys.argv[3], "rb").read()
        if len(sys.argv) > 4:
            data = segments(sys.argv[3]).get(int(sys.argv[4]), b"")
        found = scanner(sys.argv[2])(data)
        for sec, why in found:
            print("%s\t%s" % (sec, why))
        sys.exit(0 if found else 1)
    elif cmd == "dump":  # FILE (pg_dump's plain output): which part of it holds which secrets
        scan, part, parts = scanner(sys.argv[2]), "schema", {}
        for line in open(sys.argv[3], "rb"):
            m = re.match(rb"COPY (\S+) ", line)
            if m:
                part = "rows of " + m.group(1).decode()
            elif line.startswith(b"-- Data for Name: BLOBS"):
                part = "large objects"
            parts.setdefault(part, []).append(line)
            if line == b"\\.\n":
                part = "schema"
        for part, ls in parts.items():
            found = scan(b"".join(ls))
            if found:
                print("%s: %s" % (part, "; ".join("%s (%s)" % f for f in found[:4]) +
                                  (" ..." if len(found) > 4 else "")))
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6].split())
    elif cmd == "config":  # PORT PGPORT PWFILE KEYFILE [strip]
        port, pgport, pwfile, key = sys.argv[2:6]
        strip = len(sys.argv) > 6 and sys.argv[6] == "strip"
        allow = {"name": "all", "action": "allow",
                 "class": ["select", "insert", "update", "delete", "merge", "copy_to",
                           "explain", "set", "transaction", "ddl", "other", "prepare",
                           "execute", "call"],
                 "relations": ["public.*", "pg_catalog.*", "pg_temp.*", "information_schema.*"],
                 "functions": ["*"]}
        masks = [
            {"name": "ssn", "action": "mask", "columns": "public.people.ssn",
             "strategy": "partial", "keep": 4},
            {"name": "email", "action": "mask", "columns": "public.people.email",
             "strategy": "email", "predicates": True},
            {"name": "card", "action": "mask", "columns": "public.people.card",
             "strategy": "hash"},
            {"name": "salary", "action": "mask", "columns": "public.people.salary",
             "strategy": "redact"},
            {"name": "phone", "action": "mask", "columns": "public.people.phone",
             "strategy": "null"},
            # the free-text column: detectors in it, and what is computed from it masked whole
            {"name": "notes", "action": "mask", "columns": "public.people.notes",
             "detectors": ["email", "card", "ssn", "jwt", "aws_key", "github_token",
                           "private_key"], "strategy": "redact"},
            # and every other text column of any result: detectors only
            {"name": "anywhere", "action": "mask",
             "detectors": ["email", "card", "ssn", "jwt", "aws_key", "github_token",
                           "private_key"], "strategy": "redact"},
        ]
        masked = {"name": "masked", "match": {"user": "masked"}, "auth": "trust",
                  "upstream": "main", "unmask": ["public.people.name"], "rules": masks + [allow]}
        plain = {"name": "plain", "match": {"user": "plain"}, "auth": "trust",
                 "upstream": "main", "rules": [allow]}
        c = {"workers": 2, "listen": [{"host": "127.0.0.1", "port": int(port)}],
             "mask_key_file": key,
             "upstreams": {"main": {"host": "127.0.0.1", "port": int(pgport), "user": "postgres",
                                    "password_file": pwfile, "sslmode": "disable",
                                    "database": "maskdb"}},
             "identities": [masked, plain]}
        if strip:  # what pgwardd accepted before masking: the masked identity masks nothing
            del c["mask_key_file"]
            del masked["unmask"]
            masked["rules"] = [allow]
        print(json.dumps(c, indent=1))

main()
PY
scan() { "$PY" "$W/scan.py" "$@"; }

# --- database, pgwardd ---------------------------------------------------------------------------
fresh_db() { # a new maskdb with the schema, loaded by the superuser
	pgtmp_psql -q -c "DROP DATABASE IF EXISTS maskdb WITH (FORCE)" >/dev/null 2>&1
	pgtmp_psql -q -c "CREATE DATABASE maskdb" >/dev/null &&
		pgtmp_psql -q -X -v ON_ERROR_STOP=1 -d maskdb -f "$M/schema.sql" >"$W/schema.log" 2>&1
}
stop_pgwardd() { # (and forget its pid, which pw_cleanup would otherwise signal at exit)
	local p keep=()
	if [[ -n ${PGWARDD_PID:-} ]]; then
		kill -TERM "$PGWARDD_PID" 2>/dev/null
		wait "$PGWARDD_PID" 2>/dev/null
		for p in "${PW_PIDS[@]}"; do
			[[ $p == "$PGWARDD_PID" ]] || keep+=("$p")
		done
		PW_PIDS=("${keep[@]}")
		PGWARDD_PID=
	fi
}
MASK_CONFIG=   # "accepted", or why not
start_pgwardd() { # KEYFILE LOGNAME
	scan config "$PORT" "$PGTMP_PORT" "$PGTMP_DIR/postgres.pw" "$1" >"$W/pgwardd.json"
	if ! "$BUILD/pgwardctl" config check "$W/pgwardd.json" >"$W/config-check.out" 2>&1; then
		[[ -n $MASK_CONFIG ]] || MASK_CONFIG="pgwardctl config check refuses it: $(tr '\n' ' ' <"$W/config-check.out")"
		scan config "$PORT" "$PGTMP_PORT" "$PGTMP_DIR/postgres.pw" "$1" strip >"$W/pgwardd.json"
	else
		MASK_CONFIG=${MASK_CONFIG:-accepted}
	fi
	pw_start_pgwardd "$W/pgwardd.json" "$W/$2.log"
}
fresh() { # KEYFILE LOGNAME: pgwardd stopped, a new database, pgwardd started
	stop_pgwardd
	fresh_db || return 1
	start_pgwardd "$@"
}
if ! fresh "$W/key1" pgwardd.setup; then
	echo "not ok - the database or pgwardd did not come up"
	tail -5 "$W/schema.log" "$W/pgwardd.setup.log" 2>/dev/null | sed 's/^/#   /'
	echo "1..1"
	exit 1
fi
check "pgwardd accepts the masking configuration (mask rules, unmask, mask_key_file): $MASK_CONFIG" \
	test "$MASK_CONFIG" = accepted

# --- the corpus and the secrets themselves -------------------------------------------------------
if ! scan texts "$M/corpus.tsv" >"$W/texts" 2>"$W/texts.err"; then
	echo "not ok - tests/masking/corpus.tsv does not read: $(cat "$W/texts.err")"
	echo "1..1"
	exit 1
fi
n=$(wc -l <"$W/texts")
check "the corpus has at least 100 statements ($n)" test "$n" -ge 100
check "no corpus line holds a secret itself" scan clean "$M/secrets.txt" "$M/corpus.tsv"
nsec=$(grep -cv '^#\|^$' "$M/secrets.txt")
psql -X -At "$(conn plain)" -c "SELECT * FROM people" >"$W/plain.all" 2>&1
missing=$(grep -v '^#' "$M/secrets.txt" | grep . | while IFS= read -r s; do
	grep -qF -- "$s" "$W/plain.all" || echo "$s"
done)
check "every one of the $nsec secrets is in the data (plain reads it)" test -z "$missing"
[[ -z $missing ]] || sed 's/^/#   missing: /' <<<"$missing"

# --- negative controls: plain sees the secrets, and the scan says so ----------------------------
printf '%s\n' "SELECT * FROM people" "SELECT salary FROM people" \
	"COPY (SELECT salary FROM people) TO STDOUT (FORMAT binary)" \
	"SELECT regexp_replace(card, '\\D', '', 'g')::bigint FROM people" \
	"DO \$\$BEGIN END\$\$" "SELECT 1 / 0" >"$W/controls"
for m in b t; do
	"$CLIENT" "$(conn plain)" "$W/ctrace.$m" $m <"$W/controls" >"$W/cout.$m" 2>"$W/cverdicts.$m"
done
i=0
while IFS= read -r sql; do
	i=$((i + 1))
	psql -X -v VERBOSITY=verbose -v SHOW_CONTEXT=always "$(conn plain)" -c "$sql" >"$W/cpsql.$i" 2>&1
done <"$W/controls"
salaries() { # FILE [N]: every salary found in it
	local f
	f=$(scan found "$M/secrets.txt" "$@" | cut -f1)
	for s in 91827364 73645182 58273619 64738291 82736451; do
		grep -qx -- "$s" <<<"$f" || return 1
	done
}
cards() { # FILE [N]: every card of the card column found in it
	local f
	f=$(scan found "$M/secrets.txt" "$@" | cut -f1)
	for s in "4539 1488 0343 6467" 5425-2334-3010-9903 371449635398431 6011000990139424 "4916 3385 0608 2832"; do
		grep -qxF -- "$s" <<<"$f" || return 1
	done
}
check "control: plain's SELECT * FROM people shows secrets in psql's output" scan found "$M/secrets.txt" "$W/cpsql.1"
for m in b t; do
	what=binary
	[[ $m == t ]] && what=text
	check "control: plain's SELECT * FROM people shows secrets in $what results" scan found "$M/secrets.txt" "$W/cout.$m" 1
	check "control: plain's SELECT * FROM people shows secrets in the trace of $what results" scan found "$M/secrets.txt" "$W/ctrace.$m" 1
	check "control: every salary is found in $what results of SELECT salary" salaries "$W/cout.$m" 2
	check "control: every salary is found in the trace of $what results of SELECT salary" salaries "$W/ctrace.$m" 2
	check "control: every salary is found in a binary COPY through mask_client ($what)" salaries "$W/cout.$m" 3
	check "control: every card is found as a bigint in $what results" cards "$W/cout.$m" 4
	check "control: every card is found as a bigint in the trace of $what results" cards "$W/ctrace.$m" 4
done
check "control: every salary is found in a binary COPY through psql" salaries "$W/cpsql.3"
v=$(tr '\n' ' ' <"$W/cverdicts.b")
check "control: mask_client's verdicts (binary): ok ok ok ok deny error 22012 ($v)" test "$v" = "ok ok ok ok deny error 22012 "
v=$(tr '\n' ' ' <"$W/cverdicts.t")
check "control: mask_client's verdicts (text): ok ok ok ok deny error 22012 ($v)" test "$v" = "ok ok ok ok deny error 22012 "
psql_says() { grep -q "^ERROR:  42501: pgward:" "$1" && grep -q "^ERROR:  22012:" "$2"; }
check "control: psql's output says 42501 pgward for DO, 22012 for 1 / 0" psql_says "$W/cpsql.5" "$W/cpsql.6"

# --- the corpus, pass by pass, each on a fresh database and pgwardd ------------------------------
t0=$(date +%s)
people_sum() { pgtmp_psql -d maskdb -Atc "SELECT md5(string_agg(p::text, '|' ORDER BY id)) FROM people p" 2>&1; }
for mode in "${MODES[@]}"; do
	if ! fresh "$W/key1" "pgwardd.$mode"; then
		echo "not ok - $mode pass: the database or pgwardd did not come up"
		PW_FAIL=$((PW_FAIL + 1))
		continue
	fi
	before=$(people_sum)
	if [[ $mode == psql ]]; then
		mkdir -p "$W/psql.$IDENT"
		i=0
		while IFS= read -r sql; do
			i=$((i + 1))
			timeout 60 psql -X -v VERBOSITY=verbose -v SHOW_CONTEXT=always "$(conn "$IDENT")" \
				-c "$sql" >"$W/psql.$IDENT/$i" 2>&1
		done <"$W/texts"
	else
		timeout 600 "$CLIENT" "$(conn "$IDENT")" "$W/trace.$mode.$IDENT" "$mode" <"$W/texts" \
			>"$W/out.$mode.$IDENT" 2>"$W/verdicts.$mode.$IDENT"
	fi
	stop_pgwardd
	if PGPASSWORD=$(cat "$PGTMP_DIR/postgres.pw") "$PGTMP_PGBIN/pg_dump" -h 127.0.0.1 \
		-p "$PGTMP_PORT" -U postgres -d maskdb --exclude-table-data=public.people \
		>"$W/dump.$mode" 2>"$W/dump.$mode.err"; then
		copies=$(scan dump "$M/secrets.txt" "$W/dump.$mode")
	else
		copies="pg_dump failed: $(head -3 "$W/dump.$mode.err")"
	fi
	check "after the $mode pass: no secret copied anywhere in the database (pg_dump, people's rows aside)" \
		test -z "$copies"
	[[ -z $copies ]] || sed 's/^/#   /' <<<"$copies" | head -10
	check "after the $mode pass: people is unchanged" test "$(people_sum)" = "$before"
done
echo "# corpus passes (${MODES[*]}) as $IDENT took $(($(date +%s) - t0)) s"

emit() { # NAME OFFENDERS
	check "$1" test -z "$2"
	if [[ -n $2 ]]; then
		local k
		k=$(grep -c . <<<"$2")
		head -n 12 <<<"${2%$'\n'}" | sed 's/^/#   /'
		((k <= 12)) || echo "#   ... $((k - 12)) more (MASK_KEEP=DIR keeps report.txt with them all)"
	fi
}
scan report "$M/secrets.txt" "$M/corpus.tsv" "$W" "$IDENT" "${MODES[*]}" >"$W/report.txt"
name="" offs=""
while IFS=$'\t' read -r kind rest; do
	case $kind in
	COMMENT) echo "# $rest" ;;
	CHECK)
		[[ -z $name ]] || emit "$name" "$offs"
		name=$rest
		offs=""
		;;
	OFF) offs+="$rest"$'\n' ;;
	esac
done <"$W/report.txt"
[[ -z $name ]] || emit "$name" "$offs"
[[ -n $name ]] || check "the report was written" false

# --- the hash strategy: deterministic per key ----------------------------------------------------
fresh "$W/key1" pgwardd.hash1 || echo "# pgwardd did not restart for the hash checks"
hash_of() { psql -X -At "$(conn masked)" -c "SELECT card FROM people WHERE id = 1" 2>&1; }
h1=$(hash_of)
h2=$(hash_of)
check "hash: a card comes out as 64 hex digits ($h1)" grep -Eqx '[0-9a-f]{64}' <<<"$h1"
check "hash: the same card gives the same value in two sessions" test "$h1" = "$h2"
hb=$(echo "SELECT card FROM people WHERE id = 1" | "$CLIENT" "$(conn masked)" "$W/trace.hash" b 2>/dev/null |
	sed -n 's/^ROW //p')
check "hash: the same value through binary results" test "$hb" = "$h1"
stop_pgwardd
start_pgwardd "$W/key2" pgwardd.hash2 || echo "# pgwardd did not restart with the second key"
h3=$(hash_of)
other_hash() { [[ $1 =~ ^[0-9a-f]{64}$ && $1 != "$2" ]]; }
check "hash: another key gives another value ($h3)" other_hash "$h3" "$h1"
stop_pgwardd

# --- clients at once on the masking paths (make check SAN=1 runs pgwardd under ASan and UBSan) ----
fresh "$W/key1" pgwardd.conc || echo "# pgwardd did not restart for the concurrency checks"
cat >"$W/conc.sql" <<-'SQL'
	SELECT * FROM people;
	SELECT id, lower(ssn), card, salary FROM people WHERE id = 1;
	BEGIN;
	DECLARE c CURSOR FOR SELECT p, notes FROM people p;
	FETCH 2 FROM c;
	COMMIT;
	SELECT p.id, (p).ssn, row_to_json(p) FROM people p ORDER BY p.id;
SQL
conc_run() { # protocol: no client aborts (pgbench stops a client at any error), pgwardd serves on
	pgbench -n -c 6 -j 3 -T 4 -M "$1" -f "$W/conc.sql" "$(conn masked)" >"$W/conc.$1" 2>&1
	grep -q "number of transactions actually processed: [1-9]" "$W/conc.$1" &&
		! grep -qi "error\|abort" "$W/conc.$1" &&
		psql -X -At "$(conn masked)" -c "SELECT 1" | grep -qx 1
}
for mode in simple extended prepared; do
	check "concurrency: 6 clients for 4 s ($mode protocol) on masked results, pgwardd serves on" conc_run "$mode"
done
check "concurrency: pgwardd's log has no sanitizer report" bash -c '! grep -q "ERROR: AddressSanitizer\|runtime error:" "$1"' _ "$W/pgwardd.conc.log"
stop_pgwardd

# --- the extended protocol message by message (tests/integration/mask_proto.py) -------------------
fresh "$W/key1" pgwardd.proto || echo "# pgwardd did not restart for the protocol checks"
run_tap "$PY" "$here/mask_proto.py" "$PORT" maskdb "$IDENT" "$M/secrets.txt"
plain_leaks() { ! "$PY" "$here/mask_proto.py" "$PORT" maskdb plain "$M/secrets.txt" >"$W/proto.plain" 2>&1; }
check "control: the protocol scenarios as plain do show secrets" plain_leaks
stop_pgwardd

finish
