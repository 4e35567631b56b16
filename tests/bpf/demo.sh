#!/usr/bin/env bash
# `make demo` (scripts/demo.sh) as root, checked from its output and from the servers.
#   run 1, exactly as `make demo` runs it: the story's facts in the output (masked customers and
#          no real email, ssn or card number anywhere; DROP TABLE denied naming the rule; the
#          DELETE held, listed, approved, completed; the agent seen held in session show;
#          audit tail, audit verify, session replay), the time, and a teardown leaving nothing
#          (directory, cgroup, pins, pgwardd, the cluster's processes and port).
#   run 2, with a pgwardctl that also probes (BUILD holds the real pgwardd and a wrapper that
#          runs the real pgwardctl): PostgreSQL itself while the DELETE is held (orders still
#          there with every row) and after (no rows left; the real values are in customers),
#          pgwardd's own session show -j of the held agent, and copies of the audit trail and
#          the recording, checked here with pgwardctl.
#   run 3, a step fails (the approval is refused by the wrapper): non-zero exit, the failure
#          said, nothing left behind.
#   run 4, Ctrl-C (SIGINT to the demo's process group) while the DELETE is held: exit 130,
#          nothing left behind.
#   run 5, not root: exit 1 with the reason, nothing started.
#
# Standalone: BUILD=build-ro bash tests/bpf/demo.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$top/$BUILD
PY=/usr/bin/python3
DEMO=$top/scripts/demo.sh
# shellcheck source=../integration/lib.sh
source "$top/tests/integration/lib.sh"
unset PGOPTIONS PGSERVICE PGWARD_CONTROL_SOCKET

if [[ $EUID -ne 0 ]]; then
	echo "# SKIP: the demo needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN)" >&2
	echo "1..0 # SKIP not root (demo.sh needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN)"
	exit 0
fi
for f in "$BUILD/pgwardd" "$BUILD/pgwardctl" "$DEMO"; do
	[[ -x $f ]] || { echo "not ok - $f is missing or not executable (make BUILD=... all)"; echo "1..1"; exit 1; }
done
CGROOT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
T=$(mktemp -d "${TMPDIR:-/tmp}/pgward-demotest.XXXXXX")
chmod 755 "$T"
BG=""
test_cleanup() {
	[[ -n $BG ]] && kill -TERM -- "-$BG" 2>/dev/null && sleep 3
	rm -rf "$T"
}
trap test_cleanup EXIT
# leftovers.py WORD...: processes (not this one or its parents) whose command line holds a WORD
cat >"$T/leftovers.py" <<'PY'
import os, sys
words = [w for w in sys.argv[1:]]
mine, p = set(), os.getpid()
while p > 1:
    mine.add(p)
    try:
        p = int(open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        break
left = []
for p in os.listdir("/proc"):
    if not p.isdigit() or int(p) in mine:
        continue
    try:
        cmd = open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue
    if any(w in cmd for w in words):
        left.append("%s: %s" % (p, cmd))
print("\n".join(left), file=sys.stderr)
sys.exit(1 if left or not all(words) else 0)
PY

# The real values the demo puts into customers, read from its INSERT: every email, ssn and
# card number (the checks below fail if fewer than five of each are found).
$PY - "$DEMO" >"$T/secrets" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
rows = re.findall(r"\(\d+, '[^']+', +'([^']+)', +'([^']+)', +'([^']+)'\)", text)
for row in rows:
    for v in row:
        print(v)
PY
nsecrets=$(wc -l <"$T/secrets")
check "the demo's customers hold 5 emails, ssns and card numbers (read from scripts/demo.sh)" test "$nsecrets" = 15

# no_secrets FILE: no real value, nor anything shaped like one: an ssn, a Luhn-valid card number,
# an email whose local part is not masked
no_secrets() {
	$PY - "$1" "$T/secrets" <<'PY'
import re, sys
out = open(sys.argv[1], errors="replace").read()
bad = [s.strip() for s in open(sys.argv[2]) if s.strip() and s.strip() in out]
bad += re.findall(r"\b\d{3}-\d\d-\d{4}\b", out)
def luhn(d):
    t = 0
    for i, c in enumerate(reversed(d)):
        n = int(c) * (2 if i % 2 else 1)
        t += n - 9 if n > 9 else n
    return t % 10 == 0
bad += [d for d in re.findall(r"(?<!\d)\d{13,19}(?!\d)", out) if luhn(d)]
bad += [e for e in re.findall(r"[\w.*+-]+@(?:[\w-]+\.)+[A-Za-z]{2,}\b", out) if not e.startswith("****@")]
if bad:
    print("found: %s" % sorted(set(bad)), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

# facts OUT: what the demo printed about the things it made (for the teardown checks)
facts() {
	# shellcheck disable=SC2016 # $DEMO is literal in the output
	D_DIR=$(sed -n 's/.*\$DEMO is \(\/[^)]*\)).*/\1/p' "$1" | head -n 1)
	D_PIN=$(sed -n 's/.*eBPF programs pinned under \(\/sys\/fs\/bpf\/pgward-demo-[0-9]*\).*/\1/p' "$1" | head -n 1)
	D_PGW=$(sed -n 's/^    pgwardd pid \([0-9]*\);.*/\1/p' "$1" | head -n 1)
	D_PORT=$(sed -n 's/^    postgresql:\/\/127.0.0.1:\([0-9]*\) .*/\1/p' "$1" | head -n 1)
	D_CG=${D_PIN:+$CGROOT/${D_PIN##*/}}
}

# gone NAME OUT: the demo of OUT left nothing behind
gone() {
	local n=$1
	facts "$2"
	check "$n: the demo named its directory, pin path, cgroup, pgwardd and cluster port" \
		bash -c "[[ '$D_DIR' == /tmp/pgward-demo.* || '$D_DIR' == ${TMPDIR:-/tmp}/pgward-demo.* ]] && [[ -n '$D_PIN' && -n '$D_PGW' && -n '$D_PORT' ]]"
	check "$n: its directory $D_DIR is gone" bash -c "[[ -n '$D_DIR' && ! -e '$D_DIR' ]]"
	check "$n: its pins $D_PIN are gone (no pgward-demo-* pin of it left)" \
		bash -c "[[ -n '$D_PIN' && ! -e '$D_PIN' ]]"
	check "$n: its cgroup $D_CG is gone" bash -c "[[ -n '$D_CG' && ! -e '$D_CG' ]]"
	check "$n: its pgwardd (pid $D_PGW) is gone" bash -c "[[ -n '$D_PGW' ]] && ! kill -0 '$D_PGW' 2>/dev/null"
	check "$n: no process of the demo is left (postgres -D, pgwardd --config, the agent's psql)" \
		$PY "$T/leftovers.py" "$D_DIR" "agent@127.0.0.1:$D_PORT/"
	check "$n: nothing listens on the cluster's port $D_PORT any more" \
		bash -c "[[ -n '$D_PORT' ]] && ! ss -Hltn 'sport = :$D_PORT' | grep -q ."
}

has() { grep -qF -- "$2" "$1" || { echo "not in the output: $2" >&2; false; }; }
hasre() { grep -qE -- "$2" "$1" || { echo "no line matches: $2" >&2; false; }; }

# --- run 1: exactly as `make demo` -------------------------------------------------------------
O=$T/run1.out
t0=$(date +%s.%N)
BUILD=$BUILD "$DEMO" >"$O" 2>&1
rc=$?
secs=$($PY -c "print(round($(date +%s.%N) - $t0, 1))")
echo "# run 1 (as make demo): exit $rc in $secs s"
check "run 1: exit status 0" test "$rc" = 0
check "run 1: under two minutes ($secs s), and says so (Done in N s)" \
	bash -c "$PY -c 'import sys; sys.exit(0 if $secs < 120 else 1)' && grep -Eq '^==> Done in [0-9]+ s' '$O'"
check "run 1: narration as ==> lines (the cluster, pgwardd, the agent, approval, trail, replay)" \
	bash -c "test \$(grep -c '^==> ' '$O') -ge 10"
check "run 1: the policy shown compact (its mask, deny and allow rules, a few lines, no JSON)" \
	bash -c "has() { grep -qE \"\$1\" '$O'; }; has '^      mask    hide-ssn ' && has '^      deny    no-ddl ' && has '^      allow   read ' && ! grep -q '\"identities\"' '$O'"
check "run 1: the agent dials PostgreSQL's own address (postgresql://agent@127.0.0.1:PORT/shop)" \
	hasre "$O" '^  agent\$ psql postgresql://agent@127\.0\.0\.1:[0-9]+/shop '
check "run 1: customers masked as the policy says (****@domain, ****9001, ****1111)" \
	hasre "$O" '^ +1 \| Ada Lovelace +\| \*\*\*\*@example\.com +\| \*\*\*\*9001 +\| \*\*\*\*1111$'
check "run 1: all five customers shown, each masked" \
	bash -c "test \$(grep -cE '^ +[1-5] \\| [A-Za-z ]+\\| \\*\\*\\*\\*@[a-z.]+ +\\| \\*\\*\\*\\*[0-9]{4} \\| \\*\\*\\*\\*[0-9]{4}\$' '$O') -ge 5"
check "run 1: no real email, ssn or card number anywhere in the output" no_secrets "$O"
check "run 1: DROP TABLE orders denied, the error naming the rule" \
	has "$O" 'ERROR:  pgward: identity support-agent may not run DDL on public.orders (rule 4 "no-ddl")'
check "run 1: PostgreSQL says orders is still there with its 6 rows" \
	has "$O" "orders is still there, with its 6 rows"
check "run 1: approval list shows the held DELETE pending" \
	hasre "$O" '^    [^ ]+: pending +identity support-agent .*"DELETE FROM orders;"$'
check "run 1: session show shows the agent held: steered from its cgroup, as nobody, psql" \
	bash -c "grep -qE '^    [0-9]+: identity support-agent \\(cgroup /pgward-demo-[0-9]+\\) +state held' '$O' &&
		grep -qE 'pid [0-9]+ +uid 65534 +gid 65534 +comm psql +exe /usr/lib/postgresql/15/bin/psql +cgroup /pgward-demo-[0-9]+ +dialled 127\\.0\\.0\\.1:' '$O'"
check "run 1: approval approve by root (scope once), the no_where guardrail named" \
	bash -c "grep -qE '^    [^ ]+: approved +identity support-agent' '$O' && grep -q 'decided .* by root  uid 0  scope once' '$O' && grep -q 'guardrail no_where' '$O'"
check "run 1: the agent's DELETE completed (DELETE 6), then counted 0 orders" \
	bash -c "grep -q '^    DELETE 6\$' '$O' && grep -qE '^ +0\$' '$O' && grep -q 'orders has 0 rows now' '$O'"
check "run 1: audit tail shows the redirect, session start, the DROP denied, the approval, the approved DELETE, the end" \
	bash -c "has() { grep -qE \"\$1\" '$O'; }; has ' redirect pid=[0-9]+ comm=psql cgroup=/pgward-demo-' &&
		has ' session_start session=[0-9]+ identity=support-agent ' &&
		has ' statement .*decision=deny status=refused .*sqlstate=42501 text=\"DROP TABLE orders;\"' &&
		has ' approval event=requested ' && has ' approval event=approved ' &&
		has ' statement .*decision=approved status=done rows=6 .*text=\"DELETE FROM orders;\"' &&
		has ' session_end session=[0-9]+ '"
check "run 1: audit verify passes (ok: 1 file, records 1..N)" hasre "$O" '^    ok: 1 file, records 1\.\.[0-9]+, last hash [0-9a-f]{64}'
check "run 1: session replay shows what the agent did (its statements, masked rows, the refusal, DELETE 6)" \
	bash -c "r=\$(sed -n '/# pgwardctl session replay/,/^==> Done/p' '$O'); grep -q 'SELECT \\* FROM customers ORDER BY id;' <<<\"\$r\" &&
		grep -q '\\*\\*\\*\\*@example.com' <<<\"\$r\" && grep -q '^    -- refused by pgward' <<<\"\$r\" && grep -q '^    DELETE 6' <<<\"\$r\" && grep -q '(5 rows)' <<<\"\$r\""
check "run 1: the teardown is said last" bash -c "tail -n 1 '$O' | grep -q '^==> Torn down: '"
gone "run 1" "$O"
[[ $PW_FAIL == 0 ]] || sed 's/^/#   | /' "$O"

# --- a BUILD directory whose pgwardctl runs the real one, and first does what MODE says ---------
mkdir -p "$T/probe" "$T/bin"
ln -s "$BUILD/pgwardd" "$T/bin/pgwardd"
cat >"$T/bin/pgwardctl" <<EOF
#!/bin/bash
real=$BUILD/pgwardctl
probe=$T/probe
mode=\$(cat "$T/mode" 2>/dev/null)
srv() {
	PGPASSWORD=\$(cat "\$PGTMP_DIR/postgres.pw") "\$PGTMP_PGBIN/psql" -X -qAt -v ON_ERROR_STOP=1 \\
		-h 127.0.0.1 -p "\$PGTMP_PORT" -U postgres -d shop "\$@"
}
case " \$* " in
*" approval approve "*)
	case \$mode in
	probe)
		srv -c "SELECT to_regclass('public.orders') IS NOT NULL, (SELECT count(*) FROM orders)" >"\$probe/held.txt" 2>&1
		"\$real" -s "\$2" -j session show >"\$probe/sessions.json" 2>&1 ;;
	refuse)
		echo "Error: refused by the test" >&2
		exit 1 ;;
	hang)
		touch "\$probe/hanging"
		sleep 60
		exit 1 ;;
	esac ;;
*" audit verify "*)
	if [[ \$mode == probe ]]; then
		srv -c "SELECT to_regclass('public.orders') IS NOT NULL, (SELECT count(*) FROM orders)" >"\$probe/after.txt" 2>&1
		srv -F ' ' -c "SELECT email, ssn, card_number FROM customers ORDER BY id" >"\$probe/real.txt" 2>&1
	fi ;;
*" session replay "*)
	if [[ \$mode == probe ]]; then
		for a in "\$@"; do [[ -d \$a ]] && d=\$a; done
		cp -r "\$d" "\$probe/recordings" && cp "\$(dirname "\$d")/audit.jsonl" "\$probe/audit.jsonl"
	fi ;;
esac
exec "\$real" "\$@"
EOF
chmod 755 "$T/bin/pgwardctl"

# --- run 2: what PostgreSQL and pgwardd say ----------------------------------------------------
echo probe >"$T/mode"
O=$T/run2.out
BUILD=$T/bin "$DEMO" >"$O" 2>&1
rc=$?
echo "# run 2 (probing): exit $rc"
check "run 2: exit status 0" test "$rc" = 0
check "run 2: while the DELETE was held, PostgreSQL still had orders with all 6 rows (the DROP never ran, the DELETE not yet)" \
	bash -c "[[ \$(cat '$T/probe/held.txt') == 't|6' ]] || { cat '$T/probe/held.txt' >&2; false; }"
check "run 2: afterwards orders exists with no rows (the approved DELETE really ran)" \
	bash -c "[[ \$(cat '$T/probe/after.txt') == 't|0' ]] || { cat '$T/probe/after.txt' >&2; false; }"
check "run 2: PostgreSQL holds the real values (5 customers), the ones the test looks for" \
	bash -c "[[ \$(wc -l <'$T/probe/real.txt') == 5 ]] && [[ \$(tr ' ' '\n' <'$T/probe/real.txt' | sort) == \$(sort '$T/secrets') ]]"
check "run 2: no real value in the output" no_secrets "$O"
# (the checks below read JSON: d is the file's)
jc() {
	check "$1" env FACT_CG="/${D_PIN##*/}" $PY -c '
import json, os, sys
E = os.environ
raw = open(sys.argv[1]).read()
try:
    d = json.loads(raw) if sys.argv[1].endswith(".json") else [json.loads(l) for l in raw.splitlines() if l.strip()]
except ValueError as e:
    print("not JSON: %s: %r" % (e, raw[:800]), file=sys.stderr); sys.exit(1)
ok = eval("(" + sys.argv[2] + "\n)")
if not ok:
    print(raw[:3000], file=sys.stderr)
sys.exit(0 if ok else 1)' "$2" "$3"
}
facts "$O"
jc "run 2: pgwardd's session show -j while held: the agent, steered, held, uid 65534, psql, in the demo cgroup, dialling PostgreSQL's port" \
	"$T/probe/sessions.json" '
[(s["identity"], s["steered"], s["state"], s["kernel"]["uid"], s["kernel"]["comm"], s["kernel"]["cgroup"], s["kernel"]["dst"], s["statement"]["text"], s["approval"] is not None)
 for s in d] == [("support-agent", True, "held", 65534, "psql", E["FACT_CG"], "127.0.0.1:'"$D_PORT"'", "DELETE FROM orders;", True)]'
check "run 2: the trail (copied at the demo's end) verifies with pgwardctl audit verify" \
	"$BUILD/pgwardctl" audit verify "$T/probe/audit.jsonl"
jc "run 2: the trail: DROP TABLE orders denied by rule 4 (42501)" "$T/probe/audit.jsonl" '
[(r["decision"], r["by"], r["sqlstate"], r["status"]) for r in d if r["type"] == "statement" and r["text"] == "DROP TABLE orders;"]
 == [("deny", "rule", "42501", "refused")]'
jc "run 2: the trail: the DELETE requested, approved by root, then run as approved (6 rows)" "$T/probe/audit.jsonl" '
[r["event"] for r in d if r["type"] == "approval"] == ["requested", "approved"] and
[r["decided"]["by"] for r in d if r["type"] == "approval" and r["event"] == "approved"] == ["root"] and
[(r["decision"], r["status"], r["rows"]) for r in d if r["type"] == "statement" and r["text"] == "DELETE FROM orders;"] == [("approved", "done", 6)]'
jc "run 2: the trail: the kernel steered the agent (redirect), its session started as support-agent from the demo cgroup, as uid 65534" \
	"$T/probe/audit.jsonl" '
any(r["type"] == "redirect" and r["kernel"]["cgroup"] == E["FACT_CG"] for r in d) and
[(r["identity"], r["kernel"]["uid"], r["kernel"]["cgroup"], r["database"]) for r in d if r["type"] == "session_start"]
 == [("support-agent", 65534, E["FACT_CG"], "shop")]'
"$BUILD/pgwardctl" session replay "$T/probe/recordings"/*.pgrec >"$T/replay.out" 2>&1
check "run 2: the recording replays (pgwardctl session replay FILE): the agent's four statements" \
	bash -c "test \$(grep -cE '^(SELECT \\* FROM customers|DROP TABLE orders|DELETE FROM orders|SELECT count)' '$T/replay.out') = 4"
zcat "$T/probe/recordings"/*.pgrec >"$T/rec.raw" 2>&1
check "run 2: the recording holds the masked rows (recorded after masking)" grep -aqF '****9001' "$T/rec.raw"
check "run 2: the recording holds no real value" no_secrets "$T/rec.raw"
gone "run 2" "$O"

# --- run 3: a step fails -----------------------------------------------------------------------
echo refuse >"$T/mode"
O=$T/run3.out
BUILD=$T/bin timeout 100 "$DEMO" >"$O" 2>&1
rc=$?
echo "# run 3 (the approval fails): exit $rc"
check "run 3: a failed step (approval approve refused): non-zero exit (1)" test "$rc" = 1
check "run 3: the failure is said (demo: FAILED: pgwardctl failed ...)" has "$O" "demo: FAILED: pgwardctl failed"
check "run 3: the story stopped there (no Done line), the teardown still ran" \
	bash -c "! grep -q '^==> Done' '$O' && tail -n 1 '$O' | grep -q '^==> Torn down: '"
gone "run 3" "$O"

# --- run 4: Ctrl-C while the DELETE is held ----------------------------------------------------
echo hang >"$T/mode"
rm -f "$T/probe/hanging"
O=$T/run4.out
# its own process group, SIGINT not ignored (as a terminal's foreground job)
BUILD=$T/bin $PY -c 'import os, signal, sys
os.setsid()
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$DEMO" >"$O" 2>&1 &
BG=$!
for _ in $(seq 600); do
	[[ -e $T/probe/hanging ]] && break
	kill -0 "$BG" 2>/dev/null || break
	sleep 0.1
done
check "run 4: the demo reached the approval (the DELETE held)" test -e "$T/probe/hanging"
kill -INT -- "-$BG"
t0=$(date +%s)
wait "$BG"
rc=$?
BG=""
echo "# run 4 (Ctrl-C): exit $rc after $(($(date +%s) - t0)) s"
check "run 4: Ctrl-C: exit 130, within 15 s" bash -c "test $rc = 130 && test $(($(date +%s) - t0)) -le 15"
check "run 4: the teardown ran" bash -c "tail -n 1 '$O' | grep -q '^==> Torn down: '"
gone "run 4" "$O"

# --- run 5: not root ---------------------------------------------------------------------------
setpriv --reuid=nobody --regid=nogroup --clear-groups env BUILD="$BUILD" HOME=/ bash "$DEMO" >"$T/run5.out" 2>&1
rc=$?
check "run 5: not root: exit 1, saying why (root, the capabilities), nothing started" \
	bash -c "test $rc = 1 && grep -q 'run it as root' '$T/run5.out' && ! grep -q '^==> ' '$T/run5.out'"

finish
