# shellcheck shell=bash
# pgwardd helpers shared by scripts/bench.sh and scripts/demo.sh.  Source it from bash
# after scripts/pgtmp.sh and after a cluster is up (pgtmp_start):
#
#   pgw_free_port                 a free TCP port on 127.0.0.1
#   pgw_wait_listen PORT PID [S]  wait until something listens on 127.0.0.1:PORT;
#                                 fails early when PID exits (default 10 s)
#   pgw_write_config FILE PORT UPSTREAM_USER PASSWORD_FILE IDENTITY_JSON [MERGE_JSON...]
#                                 a pgwardd configuration with one listener
#                                 (127.0.0.1:PORT), one upstream "pg" (the current
#                                 pgtmp cluster over TCP, sslmode disable) and one
#                                 identity; each MERGE_JSON (an object) is then merged
#                                 into it in turn: objects key by key, anything else
#                                 replaced
#   pgw_start CONFIG LOG PORT     start $PGW_BIN --config CONFIG in the background,
#                                 output to LOG; sets PGW_PID and waits for PORT and
#                                 for the log's "started" (redirect attached)
#   pgw_stop_all                  stop every pgwardd started by pgw_start (and, for a
#                                 configuration with a redirect, remove its pins: a stop
#                                 alone leaves them, fail-closed)
#
# PGW_BIN: the daemon (default $BUILD/pgwardd).  Functions return non-zero on failure
# and work under `set -euo pipefail`.

PGW_PIDS=()
PGW_PINS=()

pgw__err() { printf 'pgwardd helper: error: %s\n' "$*" >&2; }

pgw_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pgw_wait_listen() {
	local port=$1 pid=$2 secs=${3:-10} i
	for ((i = 0; i < secs * 20; i++)); do
		if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

pgw_write_config() {
	if (($# < 5)); then
		pgw__err "usage: pgw_write_config FILE PORT UPSTREAM_USER PASSWORD_FILE IDENTITY_JSON [MERGE_JSON...]"
		return 2
	fi
	if [[ -z ${PGTMP_PORT:-} ]]; then
		pgw__err "pgw_write_config: no cluster (pgtmp_start first)"
		return 1
	fi
	python3 - "$PGTMP_PORT" "$@" <<-'PY'
		import json, sys
		upstream_port = int(sys.argv[1])
		path, port, user, pwfile, identity = sys.argv[2:7]
		merges = sys.argv[7:]

		def deep_merge(base, extra):
		    for k, v in extra.items():
		        if isinstance(v, dict) and isinstance(base.get(k), dict):
		            deep_merge(base[k], v)
		        else:
		            base[k] = v
		    return base

		conf = {
		    "workers": 2,
		    "log_level": "info",
		    "shutdown_grace_seconds": 2,
		    "listen": [{"host": "127.0.0.1", "port": int(port)}],
		    "upstreams": {
		        "pg": {"host": "127.0.0.1", "port": upstream_port, "user": user,
		               "password_file": pwfile, "sslmode": "disable"},
		    },
		    "identities": [json.loads(identity)],
		}
		for m in merges:
		    try:
		        extra = json.loads(m or "{}")
		    except ValueError as e:
		        sys.exit("pgw_write_config: MERGE_JSON is not JSON: %s: %s" % (e, m))
		    if not isinstance(extra, dict):
		        sys.exit("pgw_write_config: MERGE_JSON must be a JSON object: %s" % m)
		    deep_merge(conf, extra)
		with open(path, "w") as f:
		    json.dump(conf, f, indent=2)
		    f.write("\n")
	PY
}

pgw_start() {
	local conf=$1 log=$2 port=$3 bin=${PGW_BIN:-${BUILD:-build}/pgwardd}
	if [[ ! -x $bin ]]; then
		pgw__err "$bin not found (run make)"
		return 1
	fi
	if ! "$bin" --config "$conf" --check >"$log" 2>&1; then
		cat "$log" >&2
		pgw__err "pgwardd rejected $conf"
		return 1
	fi
	"$bin" --config "$conf" >"$log" 2>&1 &
	PGW_PID=$!
	PGW_PIDS+=("$PGW_PID")
	# the pins a redirect leaves after a stop (read now: the file may be gone by then)
	PGW_PINS+=("$(python3 -c 'import json, sys
r = json.load(open(sys.argv[1])).get("redirect")
print(r.get("pin_path", "/sys/fs/bpf/pgward") if r is not None else "")' "$conf" 2>/dev/null)")
	if ! pgw_wait_listen "$port" "$PGW_PID" 10; then
		tail -n 20 "$log" >&2
		pgw__err "pgwardd did not start listening on 127.0.0.1:$port"
		return 1
	fi
	# with a redirect, listening comes before the BPF programs are attached; "started" comes
	# after (without one, listening is enough)
	[[ -n ${PGW_PINS[-1]} ]] || return 0
	local i
	for ((i = 0; i < 200; i++)); do
		grep -q 'pgwardd .* started (pid' "$log" 2>/dev/null && return 0
		kill -0 "$PGW_PID" 2>/dev/null || break
		sleep 0.05
	done
	tail -n 20 "$log" >&2
	pgw__err "pgwardd did not finish starting"
	return 1
}

# SIGTERM starts the graceful stop, a second one closes the remaining sessions at once.
pgw_stop_all() {
	local pid i
	for pid in "${PGW_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	# unpinning the links detaches them (what pgwardd --uninstall does)
	local pin
	for pin in "${PGW_PINS[@]}"; do
		[[ $pin == /sys/fs/bpf/?* ]] && rm -rf -- "$pin"
	done
	PGW_PIDS=()
	PGW_PINS=()
	return 0
}
