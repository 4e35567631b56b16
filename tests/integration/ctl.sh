#!/usr/bin/env bash
# pgwardctl's grammar and output, without a server: help, errors, prefixes, version, the shape
# of -j output (config check and policy check alike, absent values null), strict numbers.
# Each row of the tables below is one check on exit status and exact output.
# Environment: BUILD (default build).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
# shellcheck source=lib.sh
source "$here/lib.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-ctl.XXXXXX")
trap 'rm -rf "$W"' EXIT

cat >"$W/ok.json" <<'EOF2'
{"listen": [{"host": "127.0.0.1", "port": 6432}],
 "upstreams": {"u": {"host": "127.0.0.1", "user": "x"}},
 "identities": [{"name": "agent", "auth": "trust", "upstream": "u",
   "rules": [{"action": "allow", "class": "select"}]}]}
EOF2
# three errors in three sections
cat >"$W/bad3.json" <<'EOF2'
{"workers": 0, "listen": [{"host": "127.0.0.1", "port": 70000}],
 "upstreams": {"u": {"host": "127.0.0.1", "user": "x", "sslmode": "requir"}},
 "identities": [{"name": "a", "auth": "trust", "upstream": "u"}]}
EOF2

# run ARGS...: pgwardctl's stdout in $W/out, stderr in $W/err, exit status in $RC
run() {
	"$CTL" "$@" >"$W/out" 2>"$W/err" </dev/null
	RC=$?
}

# expect NAME STATUS STREAM TEXT -- ARGS...: exit status STATUS and STREAM (out or err) is
# exactly TEXT (TEXT "*..." : contains the rest)
expect() {
	local name=$1 status=$2 stream=$3 text=$4
	shift 5
	run "$@"
	local got
	got=$(cat "$W/$stream")
	if [[ $text == \** ]]; then
		check "$name" bash -c '[[ $1 == "$2" && $3 == *"$4"* ]] || { echo "exit $1, $5: $3"; exit 1; }' _ \
			"$RC" "$status" "$got" "${text#\*}" "$stream"
	else
		check "$name" bash -c '[[ $1 == "$2" && $3 == "$4" ]] || { echo "exit $1, $5: $3"; exit 1; }' _ \
			"$RC" "$status" "$got" "$text" "$stream"
	fi
}

# json NAME STATUS PYTHON-ASSERTION -- ARGS...: exit status and stdout one JSON document d
# (several lines: the last) for which the assertion holds
json() {
	local name=$1 status=$2 assertion=$3
	shift 4
	run "$@"
	check "$name" python3 -c '
import json, sys
rc, status, text, assertion = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
d = json.loads(text.strip().split("\n")[-1] if "\n  " not in text else text)
assert rc == status, "exit %d" % rc
assert eval(assertion), text' "$RC" "$status" "$(cat "$W/out")" "$assertion"
}

# --- grammar -------------------------------------------------------------------------------------
expect "help lists every object" 0 out "*OBJECT := { approval | audit | cgroup | config | event | identity | map | policy | prog | scram | session | stats | version }" -- help
expect "--help is help" 0 out "*OBJECT := { approval | audit | cgroup | config | event | identity | map | policy | prog | scram | session | stats | version }" -- --help
expect "an unknown object: one clean line" 2 err 'Error: unknown command "frobnicate" (try "pgwardctl help")' -- frobnicate
expect "an unknown command of an object" 2 err 'Error: unknown command "policy frob" (try "pgwardctl policy help")' -- policy frob
expect "an ambiguous prefix is refused" 2 err 'Error: ambiguous command "policy s" (try "pgwardctl policy help")' -- policy s
expect "an unknown option" 2 err 'Error: unknown option "-x" (try "pgwardctl help")' -- -x
expect "a prefix of an object and of a command (p ch)" 0 out "$W/ok.json: OK" -- p ch "$W/ok.json"
expect "policy help lists its commands" 0 out "*pgwardctl policy settings" -- policy help
expect "a usage error names the command's arguments" 2 err "Error: usage: pgwardctl config check FILE" -- config check
json "under -j an error is {\"error\": ...}" 2 'd == {"error": "unknown command \"frobnicate\" (try \"pgwardctl help\")"}' -- -j frobnicate
json "under -j no object at all is an error too" 2 'd == {"error": "no object given (try \"pgwardctl help\")"}' -- -j
json "under -j a usage error is {\"error\": ...}" 2 'list(d) == ["error"] and d["error"].startswith("usage: pgwardctl config check")' -- -j config check

# --- version -------------------------------------------------------------------------------------
expect "version names pgwardctl's" 0 out "*pgwardctl v" -- version
expect "version names the libraries'" 0 out "*using libbpf " -- version
expect "-V is version" 0 out "*libpg_query (PostgreSQL " -- -V
json "-j version: every version a string" 0 'sorted(d) == ["jansson", "libbpf", "libpg_query", "openssl", "version"] and all(isinstance(v, str) and v for v in d.values())' -- -j version
json "-p is indented JSON" 0 'd["version"]' -- -p version
check "-p prints more than one line" test "$(wc -l <"$W/out")" -gt 1

# --- config check and policy check: one check, one shape -----------------------------------------
expect "config check reports every error (three in three sections)" 1 err "$W/bad3.json: \$.workers: expected an integer from 1 to 256, got 0
$W/bad3.json: \$.listen[0].port: expected an integer from 1 to 65535, got 70000
$W/bad3.json: \$.upstreams.u.sslmode: expected one of disable, prefer, require, verify-ca, verify-full, got \"requir\"
$W/bad3.json: 3 errors" -- config check "$W/bad3.json"
expect "policy check the same three" 1 err "*$W/bad3.json: 3 errors" -- policy check "$W/bad3.json"
shape='sorted(d) == ["errors", "file", "valid", "warnings"] and d["valid"] is False and [e["path"] for e in d["errors"]] == ["$.workers", "$.listen[0].port", "$.upstreams.u.sslmode"] and all(sorted(e) == ["message", "path"] for e in d["errors"])'
json "-j config check: errors as a list of {path, message}" 1 "$shape" -- -j config check "$W/bad3.json"
json "-j policy check: the same shape" 1 "$shape" -- -j policy check "$W/bad3.json"
json "-j config check of a valid file" 0 'd["valid"] is True and d["errors"] == [] and d["warnings"] == []' -- -j config check "$W/ok.json"
json "-j config check of a missing file: a null path" 1 'd["errors"][0]["path"] is None and "cannot open" in d["errors"][0]["message"]' -- -j config check "$W/none.json"
printf '{"listen": [}' >"$W/syntax.json"
json "-j a syntax error: line and column, null path" 1 'd["errors"][0]["path"] is None and d["errors"][0]["message"].startswith("line 1, column")' -- -j policy check "$W/syntax.json"

# --- absent values are null ------------------------------------------------------------------------
ex=(policy explain --config "$W/ok.json" --identity agent --offline)
json "-j explain, allowed: absent values null, not missing" 0 'd["statements"][0]["rule"] == 1 and d["rule_name"] is None and d["guardrail"] is None and d["sqlstate"] is None and d["statements"][0]["inner"] is None and d["statements"][0]["object"] is None and d["statements"][0]["language"] is None' -- -j "${ex[@]}" --sql "SELECT 1"
json "-j explain, refused: the guardrail named, a call's why" 3 'd["guardrail"] == "server_files" and d["sqlstate"] == "42501" and d["statements"][0]["calls"][0]["writes"] is True' -- -j "${ex[@]}" --sql "SELECT pg_read_file('x')"
json "-j explain: relation flags are booleans" 0 'all(isinstance(r[k], bool) for r in d["statements"][0]["relations"] for k in ("unqualified", "ambiguous", "unresolved"))' -- -j "${ex[@]}" --sql "SELECT * FROM public.t"
json "-j startup, allowed: reason, sqlstate, by null" 0 'd["decision"] == "allow" and d["reason"] is None and d["sqlstate"] is None and d["by"] is None' -- -j policy startup --config "$W/ok.json" --identity agent options=-cwork_mem=1MB
expect "explain: an unknown identity" 1 err "Error: $W/ok.json: no identity named \"nobody\"" -- policy explain --config "$W/ok.json" --identity nobody --sql x

# --- strict numbers ----------------------------------------------------------------------------------
for bad in 12x "" " 5" 0 -1 99999999999999999999 0x10; do
	expect "--iterations \"$bad\" is refused" 2 err "Error: --iterations: expected an integer from 1 to 2147483647, got \"$bad\"" -- scram verifier --iterations "$bad"
done
check "-j scram verifier with --iterations 100" python3 -c 'import json, sys; d = json.loads(sys.argv[1]); assert d["iterations"] == 100 and d["scram_verifier"].startswith("SCRAM-SHA-256$100:")' "$(printf 'pw\n' | "$CTL" -j scram verifier --iterations 100)"

finish
