#!/usr/bin/env bash
# pgward demo (`make demo`, as root): the whole story in well under two minutes.
#
# A throwaway PostgreSQL 15 (scripts/pgtmp.sh) holds a small shop: customers (with email, ssn
# and card numbers) and orders, owned by a login role whose password only pgwardd knows.
# pgwardd steers a demo cgroup with its eBPF programs, under a small policy (shown compact).
# An "agent" (psql, in that cgroup, as the user nobody) uses the ordinary connection string of
# that PostgreSQL, host and port unchanged, and authenticates as it would there; the kernel
# steers its connection into pgwardd, which knows it by its cgroup. The agent reads customers
# (masked), tries DROP TABLE orders (denied, naming the rule), and runs DELETE FROM orders
# without WHERE, which is held until the demo approves it with `pgwardctl approval approve`
# (meanwhile `pgwardctl session show` shows the agent held). Then the audit trail
# (`pgwardctl audit tail`, `audit verify`) and the recording (`pgwardctl session replay`).
# Every step is checked, and the demo exits non-zero when one fails. Everything (pgwardd, its
# pins, the cgroup, the cluster, the temporary directory) is torn down at exit, also on
# failure and Ctrl-C. All output goes to stdout, in order.
#
# Environment: BUILD (the build directory holding pgwardd and pgwardctl; default build).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$top/$BUILD
export BUILD
CTL=$BUILD/pgwardctl

# shellcheck source=pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib-pgwardd.sh
source "$top/scripts/lib-pgwardd.sh"

W=""          # the demo's temporary directory (the cluster lives in it too)
CG=""         # the demo cgroup
CGROOT=""     # the cgroup v2 mount
LOG=""        # pgwardd's log
AGENT_JOB=""  # the agent's wrapper, in the background
AGENT_UID=nobody

say() { printf '\n==> %s\n' "$*"; }
indent() { sed 's/^/    /'; }
run() { # show a command as typed (pgwardctl by its name), then run it, indented
	printf '  # %s\n' "$(printf '%s ' "$@" | sed "s#$BUILD/##g; s#$W/#\$DEMO/#g; s/ \$//")"
	local rc=0
	"$@" 2>&1 | indent || rc=${PIPESTATUS[0]}
	((rc == 0)) || die "$(basename "$1") failed (exit $rc)"
}
die() {
	printf '\ndemo: FAILED: %s\n' "$*"
	if [[ -n $LOG && -f $LOG ]]; then
		echo "demo: the last lines of pgwardd's log:"
		tail -n 15 "$LOG" | sed 's/^/demo: pgwardd: /'
	fi
	exit 1
}
ctl() { "$CTL" -s "$W/control.sock" "$@"; }
sql() { pgtmp_psql -d shop -qAtX -v ON_ERROR_STOP=1 "$@"; } # PostgreSQL itself, as its superuser

# Ends everything this script started, in order: the agent, pgwardd (and its pins), the
# cluster, the cgroup, the directory. Runs on every exit; never changes the exit status.
teardown() {
	local rc=$?
	set +e
	trap - EXIT
	trap "" INT TERM # (a second Ctrl-C does not cut the teardown short)
	local p i
	if [[ -n $CG && -d $CG ]]; then
		while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$CG/cgroup.procs"
	fi
	[[ -n $AGENT_JOB ]] && { kill -KILL "$AGENT_JOB" 2>/dev/null; wait "$AGENT_JOB" 2>/dev/null; }
	pgw_stop_all # (and the pins under the demo's pin path: unpinning detaches the programs)
	pgtmp_stop_all
	if [[ -n $CG && -d $CG ]]; then
		for ((i = 0; i < 50; i++)); do
			rmdir "$CG" 2>/dev/null && break
			sleep 0.1
		done
	fi
	[[ -n $W && -d $W ]] && rm -rf -- "$W"
	local left=() f
	for f in "$CG" "/sys/fs/bpf/pgward-demo-$$" "$W"; do
		[[ -n $f && -e $f ]] && left+=("$f")
	done
	if ((${#left[@]})); then
		printf '\ndemo: FAILED: the teardown left %s\n' "${left[*]}"
		((rc)) || exit 1
		return
	fi
	printf '\n==> Torn down: pgwardd, its pins, the cgroup, the cluster and %s are gone.\n' "${W:-the directory}"
}

setup_cluster() {
	say "A throwaway PostgreSQL 15 with a small shop (scripts/pgtmp.sh)"
	PGTMP_QUIET=1 PGTMP_PARENT=$W pgtmp_start demo || die "the cluster did not start"
	echo "    postgresql://127.0.0.1:$PGTMP_PORT  (cluster in $PGTMP_DIR)"
	(umask 077 && openssl rand -hex 24 >"$W/login.pw")
	pgtmp_psql -q -v ON_ERROR_STOP=1 -v pw="$(cat "$W/login.pw")" >/dev/null <<-'SQL' ||
		CREATE ROLE pgward_login LOGIN PASSWORD :'pw';
		CREATE DATABASE shop;
	SQL
		die "creating the login role and the database failed"
	sql >/dev/null <<-'SQL' || die "creating the schema failed"
		CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text NOT NULL,
		                        ssn text NOT NULL, card_number text NOT NULL);
		CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers,
		                     amount numeric(10, 2) NOT NULL, status text NOT NULL);
		INSERT INTO customers VALUES
		    (1, 'Ada Lovelace',    'ada.lovelace@example.com', '512-44-9001', '4111111111111111'),
		    (2, 'Alan Turing',     'alan.turing@example.org',  '219-09-9999', '5555555555554444'),
		    (3, 'Grace Hopper',    'grace@hopper.example.net', '078-05-1120', '378282246310005'),
		    (4, 'Edsger Dijkstra', 'ewd@example.edu',          '301-21-4411', '6011111111111117'),
		    (5, 'Barbara Liskov',  'liskov@example.com',       '455-73-2208', '4012888888881881');
		INSERT INTO orders VALUES (1, 1, 42.00, 'paid'), (2, 2, 17.50, 'shipped'), (3, 3, 99.90, 'open'),
		    (4, 1, 5.25, 'refunded'), (5, 4, 64.00, 'paid'), (6, 5, 12.00, 'open');
		ALTER TABLE customers OWNER TO pgward_login;
		ALTER TABLE orders OWNER TO pgward_login;
	SQL
	echo "    customers (id, name, email, ssn, card_number): $(sql -c 'SELECT count(*) FROM customers') rows"
	echo "    orders (id, customer_id, amount, status): $(sql -c 'SELECT count(*) FROM orders') rows"
	echo "    both owned by pgward_login, whose password is in \$DEMO/login.pw (0600): only pgwardd reads it"
}

# A few lines saying what the configuration does (from the file itself).
summarize_config() {
	python3 - "$1" "$W" "$CGROOT" <<-'PY'
		import json, sys
		c, w, cgroot = json.load(open(sys.argv[1])), sys.argv[2] + "/", sys.argv[3]
		def ws(v):
		    return ", ".join(v) if isinstance(v, list) else str(v)
		def short(p):
		    return p.replace(w, "$DEMO/")
		r = c["redirect"]
		print("redirect  connects from cgroup %s to port %s -> pgwardd (eBPF; fail closed)"
		      % (ws([p[len(cgroot):] for p in r["cgroups"]]), ws([str(p) for p in r["ports"]])))
		for name, u in c["upstreams"].items():
		    print("upstream  %s: %s:%s as %s (password from %s)"
		          % (name, u["host"], u["port"], u["user"], short(u["password_file"])))
		for i in c["identities"]:
		    m = ", ".join("%s %s" % kv for kv in i["match"].items())
		    print("identity  %s: %s; password (SCRAM verifier); database %s; recorded"
		          % (i["name"], m, ws(i["databases"])))
		    for rule in i["rules"]:
		        if rule["action"] == "mask":
		            what = "%s -> %s" % (rule["columns"], rule["strategy"])
		            if "keep" in rule:
		                what += " (keep %d)" % rule["keep"]
		        else:
		            what = ws(rule["class"])
		            if "relations" in rule:
		                what += " on " + ws(rule["relations"])
		            if rule.get("access") == "read":
		                what += " (read only)"
		        print("  %-6s  %-11s %s" % (rule["action"], rule["name"], what))
		    print("  then    deny everything else; guardrails on (no_where: UPDATE/DELETE without WHERE waits for a person)")
		print("audit     %s (hash-chained); recordings in %s; control socket %s"
		      % (short(c["audit"]["file"]), short(c["recording"]["dir"]), short(c["control"]["socket"])))
	PY
}

setup_pgwardd() {
	say "pgwardd steering the demo cgroup, with this policy"
	CGROOT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
	[[ -n $CGROOT ]] || die "no cgroup v2 mount (pgwardd's redirect needs one)"
	CG=$CGROOT/pgward-demo-$$
	mkdir "$CG" || die "cannot make the cgroup $CG"
	AGENT_PW=$(openssl rand -base64 18)
	local verifier
	verifier=$(printf '%s\n' "$AGENT_PW" | "$CTL" scram verifier) || die "pgwardctl scram verifier failed"
	mkdir -m 700 "$W/recordings"
	local identity
	identity=$(
		cat <<-EOF
			{"name": "support-agent", "match": {"cgroup": "/${CG#"$CGROOT"/}"}, "auth": "password",
			 "scram_verifier": "$verifier", "upstream": "pg", "databases": ["shop"], "record": true,
			 "rules": [
			   {"name": "hide-email", "action": "mask", "columns": "public.customers.email", "strategy": "email"},
			   {"name": "hide-ssn", "action": "mask", "columns": "public.customers.ssn", "strategy": "partial", "keep": 4},
			   {"name": "hide-cards", "action": "mask", "columns": "public.*.card_number", "strategy": "partial", "keep": 4},
			   {"name": "no-ddl", "action": "deny", "class": ["ddl"]},
			   {"name": "read", "action": "allow", "class": ["select", "set", "transaction"],
			    "relations": ["public.*", "pg_catalog.*"], "access": "read"},
			   {"name": "orders", "action": "allow", "class": ["update", "delete"], "relations": "public.orders"}]}
		EOF
	)
	local rest
	rest=$(
		cat <<-EOF
			{"upstreams": {"pg": {"sslmode": "verify-full", "ca_file": "$PGTMP_CA"}},
			 "redirect": {"cgroups": ["$CG"], "ports": [$PGTMP_PORT], "pin_path": "/sys/fs/bpf/pgward-demo-$$",
			              "overrides": "$W/cgroup-overrides.json", "listen4_port": $(pgw_free_port), "listen6": ""},
			 "control": {"socket": "$W/control.sock"},
			 "approvals": {"timeout_seconds": 120},
			 "audit": {"file": "$W/audit.jsonl"},
			 "recording": {"dir": "$W/recordings"}}
		EOF
	)
	local port
	port=$(pgw_free_port)
	pgw_write_config "$W/pgwardd.json" "$port" pgward_login "$W/login.pw" "$identity" \
		'{"log_level": "info"}' "$rest" || die "writing the configuration failed"
	summarize_config "$W/pgwardd.json" | indent || die "the configuration does not read back"
	echo "    (the whole file: \$DEMO/pgwardd.json; \$DEMO is $W)"
	LOG=$W/pgwardd.log
	pgw_start "$W/pgwardd.json" "$LOG" "$port" || die "pgwardd did not start"
	echo "    pgwardd pid $PGW_PID; eBPF programs pinned under /sys/fs/bpf/pgward-demo-$$"
}

# The agent: psql in the demo cgroup as nobody, with the connection string of PostgreSQL itself.
start_agent() {
	AGENT_URL="postgresql://agent@127.0.0.1:$PGTMP_PORT/shop"
	say "The agent (psql, as nobody, in cgroup /${CG#"$CGROOT"/}) connects to PostgreSQL as usual"
	echo "  agent\$ psql $AGENT_URL     (PGPASSWORD: the agent's own password)"
	echo "    the eBPF programs steer this connect into pgwardd; the agent sees 127.0.0.1:$PGTMP_PORT"
	cat >"$W/agent.sql" <<-'SQL'
		SELECT * FROM customers ORDER BY id;
		DROP TABLE orders;
		DELETE FROM orders;
		SELECT count(*) AS orders_left FROM orders;
	SQL
	printf '#!/bin/sh\necho $$ >"%s/cgroup.procs" || exit 97\ncd /\nexec "$@"\n' "$CG" >"$W/in-cgroup"
	chmod 755 "$W/in-cgroup"
	PGPASSWORD=$AGENT_PW PGCONNECT_TIMEOUT=10 "$W/in-cgroup" \
		setpriv --reuid="$AGENT_UID" --regid="$(id -g "$AGENT_UID")" --clear-groups \
		stdbuf -oL "$PGTMP_PGBIN/psql" -X -e --pset=footer=off "$AGENT_URL" \
		<"$W/agent.sql" >"$W/agent.out" 2>&1 &
	AGENT_JOB=$!
}

# Prints the lines of the agent's output from line $1 on.
agent_output_from() { tail -n "+$1" "$W/agent.out" | indent; }

story() {
	local i id sid
	# the DELETE without WHERE is held: wait for its request
	for ((i = 0; i < 200; i++)); do
		id=$(ctl -j approval list 2>/dev/null | python3 -c 'import json, sys
l = json.load(sys.stdin)
print(l[0]["id"] if l else "")' 2>/dev/null || true)
		[[ -n $id ]] && break
		kill -0 "$AGENT_JOB" 2>/dev/null || { agent_output_from 1; die "the agent ended before its DELETE was held"; }
		sleep 0.1
	done
	[[ -n $id ]] || { agent_output_from 1; die "no approval request appeared for the DELETE"; }
	local shown
	shown=$(grep -n -m1 '^DELETE FROM orders;' "$W/agent.out" | cut -d: -f1)
	[[ -n $shown ]] || { agent_output_from 1; die "the agent's DELETE is not in its output"; }
	agent_output_from 1 | head -n "$shown"
	local out
	out=$(cat "$W/agent.out")
	local real
	for real in ada.lovelace@example.com 512-44-9001 4111111111111111 grace@hopper.example.net 378282246310005; do
		[[ $out != *"$real"* ]] || die "the agent saw a real value ($real)"
	done
	[[ $out == *'****@example.com'* && $out == *'****9001'* && $out == *'****1111'* ]] ||
		die "the agent's customers are not masked as the policy says"
	[[ $out == *'(rule 4 "no-ddl")'* ]] || die "DROP TABLE orders was not denied by rule no-ddl"
	echo "    ... (the DELETE waits: pgwardd holds it)"
	say "PostgreSQL itself (as its superuser): orders is still there, with its $(sql -c 'SELECT count(*) FROM orders') rows"
	[[ $(sql -c "SELECT to_regclass('public.orders') IS NOT NULL") == t ]] || die "orders is gone"

	say "The held DELETE waits for a person:"
	run "$CTL" -s "$W/control.sock" approval list
	sid=$(ctl -j approval show "$id" | python3 -c 'import json, sys; print(json.load(sys.stdin)["session"])') ||
		die "approval show $id failed"
	say "The agent is seen live, held, with what the kernel told about it:"
	run "$CTL" -s "$W/control.sock" session show id "$sid"
	ctl -j session show id "$sid" | python3 -c 'import json, sys
s = json.load(sys.stdin)[0]
sys.exit(0 if s["state"] == "held" and s["steered"] and s["identity"] == "support-agent" else 1)' ||
		die "session show does not show the agent's session held"

	say "A person approves it:"
	run "$CTL" -s "$W/control.sock" approval approve "$id"
	ctl -j approval show "$id" | grep -q '"state": *"approved"' || die "the request $id is not approved"
	for ((i = 0; i < 200; i++)); do
		kill -0 "$AGENT_JOB" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$AGENT_JOB" 2>/dev/null && die "the agent did not finish after the approval"
	wait "$AGENT_JOB" || die "the agent's psql failed (exit $?)"
	AGENT_JOB=""
	say "The agent's DELETE completes:"
	agent_output_from $((shown + 1))
	grep -q '^DELETE 6$' "$W/agent.out" || die "the agent's DELETE did not delete the 6 orders"
	local left
	left=$(sql -c 'SELECT count(*) FROM orders')
	echo "    (PostgreSQL itself: orders has $left rows now)"
	[[ $left == 0 ]] || die "orders still has $left rows"
	SID=$sid
}

trail() {
	local i
	# the session's end, with its recording, is the trail's last record of it
	for ((i = 0; i < 100; i++)); do
		ctl audit tail -n 1 --session "$SID" --type session_end "$W/audit.jsonl" 2>/dev/null | grep -q . && break
		sleep 0.1
	done
	say "The audit trail: every session and statement, hash-chained"
	run "$CTL" audit tail -n 20 "$W/audit.jsonl"
	say "Nothing in it was changed, removed or reordered:"
	run "$CTL" audit verify "$W/audit.jsonl"
	say "What the agent did, replayed from its recording (what it sent, and saw after masking):"
	run "$CTL" session replay --dir "$W/recordings" "$SID"
	"$CTL" session replay --dir "$W/recordings" "$SID" 2>&1 | grep -q '^DROP TABLE orders;' ||
		die "the replay does not show the agent's statements"
}

main() {
	local t0=$SECONDS
	exec 2>&1 # one stream, in order
	if [[ $EUID -ne 0 ]]; then
		echo "demo: run it as root (sudo make demo): pgwardd loads eBPF programs and steers a cgroup,"
		echo "which needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and CAP_SYS_ADMIN."
		exit 1
	fi
	[[ -x $BUILD/pgwardd && -x $CTL ]] || die "$BUILD/pgwardd or pgwardctl missing (run make)"
	[[ -x /usr/lib/postgresql/15/bin/psql ]] || die "PostgreSQL 15 not found (run scripts/deps.sh)"
	export PGCLIENTENCODING=UTF8
	unset PGOPTIONS PGSERVICE PGWARD_CONTROL_SOCKET
	W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-demo.XXXXXX")
	chmod 755 "$W"
	trap teardown EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	setup_cluster
	# (pgtmp_start chained its own trap: ours again, which stops the cluster after pgwardd)
	trap teardown EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	setup_pgwardd
	start_agent
	story
	trail
	say "Done in $((SECONDS - t0)) s; tearing everything down."
}

main "$@"
