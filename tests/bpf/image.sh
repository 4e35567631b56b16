#!/usr/bin/env bash
# The OCI image for real, as root: `make deb` and scripts/image.sh (both up-to-date checks:
# after `make image` nothing is rebuilt), then the image runs the way the DaemonSet runs it:
# privileged, the host's network and pids, the host's /sys/fs/bpf (this test's own pin path),
# cgroup root and /proc, the configuration mounted at /etc/pgward, the audit trail both in a
# mounted host directory and on the container's stdout. An agent on the host (psql, python3)
# in a throwaway cgroup dials the throwaway PostgreSQL's own address and is steered into the
# container's pgwardd: a DROP TABLE is refused by the rule that names it and does not happen,
# the refusal is in the trail. Then the container is stopped: the pins stay, the agent's
# connect is refused (ECONNREFUSED) and PostgreSQL sees no connection from it. At last
# `pgwardd --uninstall` from the image removes the pins.
#
# Host-specific podman flags (this machine: hybrid cgroups, no CAP_SYS_RESOURCE for crun):
# IMAGE_PODMAN_FLAGS, default "--runtime runc --cgroup-manager cgroupfs"; the ulimits are
# given to every run (runc cannot raise them here).
#
# Standalone: BUILD=build-h2 bash tests/bpf/image.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
PY=/usr/bin/python3
# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=../integration/lib.sh
source "$top/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"
unset PGOPTIONS PGSERVICE

bpf_setup image # root or a loud skip; $CG, $CGNAME, $CGROOT, $PIN; trap bpf_cleanup
read -r -a PODMAN_FLAGS <<<"${IMAGE_PODMAN_FLAGS:---runtime runc --cgroup-manager cgroupfs}"
pm() { podman "${PODMAN_FLAGS[@]}" "$@"; }
NAME=pgward-image-test-$$
W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-imagetest.XXXXXX")
chmod 755 "$W"
CONF_OK=

img_cleanup() {
	local p
	podman rm -f -t 2 "$NAME" "$NAME-un" >/dev/null 2>&1
	if [[ -n $CONF_OK && -e $PIN && -n ${REF:-} ]]; then
		pm run --rm --privileged --network=host --pid=host -v /sys/fs/bpf:/sys/fs/bpf \
			-v /sys/fs/cgroup:/sys/fs/cgroup -v "$W/etc:/etc/pgward:ro" "${ULIMITS[@]}" \
			"$REF" --uninstall --config /etc/pgward/pgward.json >/dev/null 2>&1
	fi
	sleep 0.2
	if [[ -d $CG ]]; then
		while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$CG/cgroup.procs"
	fi
	bpf_cleanup # the cgroup, the pins (rm -rf: unpinning the links detaches them)
	rm -rf "$W"
}
trap img_cleanup EXIT
ULIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

# --- the image ------------------------------------------------------------------------------
for t in podman buildah debootstrap; do
	command -v $t >/dev/null || {
		echo "not ok - $t is missing (scripts/deps.sh)"
		finish
		exit 1
	}
done
t0=$SECONDS
version=$("$BUILD/pgwardd" --version 2>/dev/null | awk '{print $2}')
arch=$(dpkg --print-architecture)
DEB=$BUILD/pgward_${version}_${arch}.deb
# `make deb` again only when a binary is newer than the package (after `make image` it is not)
if [[ -z $version || ! -f $DEB || $BUILD/pgwardd -nt $DEB || $BUILD/pgwardctl -nt $DEB ]]; then
	make -s -C "$top" BUILD="$BUILD" deb >"$W/deb.log" 2>&1 || {
		echo "not ok - make deb failed"
		sed 's/^/#   /' "$W/deb.log" | tail -20
		finish
		exit 1
	}
	version=$("$BUILD/pgwardd" --version | awk '{print $2}')
	DEB=$BUILD/pgward_${version}_${arch}.deb
fi
REF=localhost/pgward:$version
check "scripts/image.sh builds (or finds up to date) $REF from $(basename "$DEB")" \
	bash -c "BUILD='$BUILD' '$top/scripts/image.sh' '$DEB' >'$W/image.log' 2>&1 || { cat '$W/image.log' >&2; exit 1; }"
echo "# image: $(tail -n 1 "$W/image.log") ($((SECONDS - t0)) s)"
if ! podman image exists "$REF"; then
	finish
	exit 1
fi
check "the OCI archive $BUILD/pgward-image.oci.tar holds the image (index.json names $version)" \
	bash -c "tar -xOf '$BUILD/pgward-image.oci.tar' index.json | grep -q '$version'"
check "the image: entrypoint pgwardd, --config /etc/pgward/pgward.json, SIGTERM, labelled, no ports" \
	bash -c "podman image inspect '$REF' --format '{{json .Config}}' | $PY -c '
import json, sys
c = json.load(sys.stdin)
ok = (c.get(\"Entrypoint\") == [\"/usr/sbin/pgwardd\"] and c.get(\"Cmd\") == [\"--config\", \"/etc/pgward/pgward.json\"]
      and c.get(\"StopSignal\") == \"SIGTERM\" and not c.get(\"ExposedPorts\")
      and c[\"Labels\"].get(\"org.opencontainers.image.version\") == \"$version\"
      and c[\"Labels\"].get(\"org.opencontainers.image.title\") == \"pgward\")
sys.exit(0 if ok else print(c, file=sys.stderr) or 1)'"
image_contents() {
	local out
	# shellcheck disable=SC2016 # expanded in the container
	out=$(pm run --rm --network=none "${ULIMITS[@]}" --entrypoint /bin/sh "$REF" -c '
		test "$(ls -A /etc/pgward)" = pgward.json && test ! -e /etc/machine-id &&
		dpkg-query -W -f="\${Status} \${Version}" pgward && echo &&
		for t in pgwardctl bash curl jq nsenter; do command -v $t || exit 1; done &&
		bash -n /usr/lib/pgward/pgward-k8s-sync && test -x /usr/lib/pgward/pgward-k8s-sync' 2>&1)
	if ! grep -q "install ok installed $version" <<<"$out" || [[ $(wc -l <<<"$out") != 6 ]]; then
		echo "$out" >&2
		return 1
	fi
}
check "no per-machine state in the image (mask.key, upstream.pw, machine-id); pgward installed; the sidecar and its tools" image_contents

# --- PostgreSQL, the cgroup, the configuration ----------------------------------------------
PGTMP_QUIET=1 PGTMP_LISTEN=127.0.0.1 PGTMP_CONF="log_connections = on" pgtmp_start image >/dev/null || {
	echo "not ok - cluster did not start"
	finish
	exit 1
}
PSQL=$PGTMP_PGBIN/psql
DB=$PGTMP_PORT
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
pgtmp_psql -q -c "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 3)" >/dev/null
mkdir -m 700 "$W/etc" "$W/log"
install -m 600 "$PGTMP_DIR/postgres.pw" "$W/etc/upstream.pw"
cat >"$W/etc/pgward.json" <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {
    "db": {"host": "127.0.0.1", "port": $DB, "user": "postgres",
           "password_file": "/etc/pgward/upstream.pw", "sslmode": "disable"}
  },
  "redirect": {"cgroups": ["$CG"], "ports": [$DB], "fail_mode": "closed", "fastpath": false,
               "heartbeat_timeout_seconds": 1, "pin_path": "$PIN",
               "listen4": "127.0.0.1", "listen4_port": $SPORT, "listen6": ""},
  "audit": {"file": "/var/log/pgward/audit.jsonl", "stdout": true},
  "control": {"socket": "/run/pgward/control.sock", "mode": "0600"},
  "identities": [
    {"name": "agent", "match": {"cgroup": "/$CGNAME"}, "auth": "trust", "upstream": "db",
     "rules": [{"name": "no-ddl-in-prod", "action": "deny", "class": ["ddl"]},
               {"name": "the rest", "action": "allow"}]}
  ]
}
EOF
chmod 600 "$W/etc/pgward.json"
RUN=(--privileged --network=host --pid=host --cgroupns=host "${ULIMITS[@]}"
	-v /sys/fs/bpf:/sys/fs/bpf -v /sys/fs/cgroup:/sys/fs/cgroup
	-v "$W/etc:/etc/pgward:ro" -v "$W/log:/var/log/pgward" --log-driver k8s-file)
check "pgwardd in the image accepts the configuration (--check)" \
	pm run --rm "${RUN[@]}" "$REF" --config /etc/pgward/pgward.json --check
check "the pin path is this test's own, not the default" bash -c "[[ '$PIN' == /sys/fs/bpf/pgward-image-* ]]"
rows_are() { test "$(pgtmp_psql -Atc 'SELECT count(*) FROM orders')" = "$1"; }

# --- the container ----------------------------------------------------------------------------
CONF_OK=1
start_container() {
	podman rm -f "$NAME" >/dev/null 2>&1
	pm run -d --name "$NAME" "${RUN[@]}" "$REF" >/dev/null || return 1
	local i
	for ((i = 0; i < 100; i++)); do
		podman logs "$NAME" 2>&1 | grep -q 'pgwardd .* started (pid' && return 0
		[[ $(podman inspect -f '{{.State.Running}}' "$NAME") == true ]] || break
		sleep 0.1
	done
	podman logs "$NAME" >&2
	return 1
}
check "the container starts: pgwardd in it attaches the redirect" start_container
if [[ $(podman inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null) != true ]]; then
	finish
	exit 1
fi
check "the pins are at the test's own pin path on the host" test -d "$PIN/links"
check "pgwardctl in the container answers (what a liveness probe runs)" \
	podman exec "$NAME" pgwardctl -j stats
# the programs this pin set attached (their ids), to be gone after the uninstall
podman exec "$NAME" pgwardctl -j prog show >"$W/progs.json" 2>&1
# the programs this pin set attached, by id: gone after the uninstall
check "pgwardctl prog show in the container: connect4/6 pinned at the test's pin path, on the cgroup root" \
	$PY -c "
import json, sys
d = json.load(open('$W/progs.json'))
mine = [p for p in d if str(p.get('pinned', '')).startswith('$PIN/')]
att = {p.get('attach') for p in mine if p.get('cgroup') == '/'}
open('$W/prog_ids', 'w').write(' '.join(str(p['id']) for p in mine))
ok = {'cgroup/connect4', 'cgroup/connect6'} <= att
sys.exit(0 if ok else print(json.dumps(d)[:1500], file=sys.stderr) or 1)"

# --- steered: a refusal by policy ---------------------------------------------------------------
DIRECT="host=127.0.0.1 port=$DB user=postgres dbname=postgres sslmode=disable"
out=$(in_cg "$PSQL" -X "$DIRECT" -Atc 'SELECT count(*) FROM orders' 2>&1)
check "in the cgroup, psql with the database's own address lands in the container's pgwardd ($out)" \
	test "$out" = 3
out=$(psql -X "$DIRECT" -Atc 'SELECT 1' 2>&1)
check "outside the cgroup the same string goes straight to the database (which wants a password)" \
	grep -q password <<<"$out"
check "pgwardd in the container identified the caller by the host cgroup" \
	bash -c "podman logs '$NAME' 2>&1 | grep -q 'identity=agent .*cgroup \"/$CGNAME\"'"
podman logs "$NAME" 2>&1 | grep -m1 -o 'identity=agent .*' | sed 's/^/# the container saw: /'
out=$(in_cg "$PSQL" -X "$DIRECT" -Atc 'DROP TABLE orders' 2>&1)
check "DROP TABLE is refused by the rule no-ddl-in-prod ($out)" grep -q 'no-ddl-in-prod' <<<"$out"
check "the table is still there on the server" rows_are 3
# audit_has FILE: a statement record of identity agent: DROP TABLE orders, denied by rule 1
# (1-based) with its name in the refusal, in FILE (other lines: pgwardd's log on stderr, skipped)
audit_has() {
	$PY - "$1" <<-'PY'
		import json, sys
		for line in open(sys.argv[1], errors="replace"):
		    try:
		        r = json.loads(line)
		    except ValueError:
		        continue
		    if (isinstance(r, dict) and r.get("type") == "statement" and r.get("identity") == "agent"
		            and r.get("text") == "DROP TABLE orders" and r.get("decision") == "deny"
		            and r.get("by") == "rule" and r.get("rule") == 1
		            and "no-ddl-in-prod" in (r.get("refusal") or "")):
		        sys.exit(0)
		for line in open(sys.argv[1], errors="replace"):
		    if '"statement"' in line:
		        print(line.strip()[:600], file=sys.stderr)
		sys.exit(1)
	PY
}
sleep 0.5 # the trail is written by its own thread
check "the audit trail (mounted host directory) records the refusal: deny, rule no-ddl-in-prod" \
	audit_has "$W/log/audit.jsonl"
podman logs "$NAME" >"$W/stdout.log" 2>/dev/null
check "the same record is on the container's stdout (podman logs)" audit_has "$W/stdout.log"
check "the trail's hash chain verifies (pgwardctl audit verify in the image)" \
	podman exec "$NAME" pgwardctl audit verify /var/log/pgward/audit.jsonl

# --- stopped: the pins stay, fail-closed ---------------------------------------------------------
check "podman stop (SIGTERM): pgwardd exits 0" \
	bash -c "podman stop -t 15 '$NAME' >/dev/null && test \"\$(podman inspect -f '{{.State.ExitCode}}' '$NAME')\" = 0"
check "after the stop the pins stay on the host" test -d "$PIN/links"
check "pgwardd said the gate stays closed" \
	bash -c "podman logs '$NAME' 2>&1 | grep -q 'left pinned at .*fail-closed'"
conns() { grep -c 'connection received' "$PGTMP_LOG"; }
before=$(conns)
res=$(in_cg "$PY" -c "
import socket, time
t = time.monotonic()
try:
    socket.create_connection(('127.0.0.1', $DB), timeout=5); print('connected')
except ConnectionRefusedError:
    print('refused %.1f' % ((time.monotonic() - t) * 1000))" 2>&1)
out=$(in_cg "$PSQL" -X "$DIRECT" -Atc 'DROP TABLE orders' 2>&1)
sleep 0.3
after=$(conns)
check "fail-closed: the agent's connect is refused at once ($res ms)" \
	$PY -c "import sys; w = '$res'.split(); sys.exit(not (w[0] == 'refused' and float(w[1]) < 100))"
check "fail-closed: psql from the agent fails with Connection refused" grep -q 'Connection refused' <<<"$out"
check "PostgreSQL saw no connection from the agent meanwhile ($before -> $after)" test "$before" = "$after"
check "the table is still there" rows_are 3

# --- uninstall from the image -----------------------------------------------------------------
uninstall_from_image() {
	test -d "$PIN/links" || return 1
	pm run --rm --name "$NAME-un" "${RUN[@]}" "$REF" --uninstall --config /etc/pgward/pgward.json >&2 &&
		test ! -e "$PIN"
}
check "pgwardd --uninstall from the image removes the pins" uninstall_from_image
progs_gone() {
	local id ids left i
	read -r -a ids <"$W/prog_ids" || true # (no newline at its end)
	((${#ids[@]} > 0)) || return 1
	for ((i = 0; i < 50; i++)); do # a detached program is freed after an RCU grace period
		left=()
		for id in "${ids[@]}"; do
			bpftool prog show id "$id" >/dev/null 2>&1 && left+=("$id")
		done
		((${#left[@]} == 0)) && return 0
		sleep 0.1
	done
	echo "programs still loaded: ${left[*]}" >&2
	bpftool prog show id "${left[0]}" >&2
	return 1
}
check "none of the programs this pin set attached is left (by id), the test's cgroup has none" \
	bash -c "$(declare -f progs_gone); W='$W'; progs_gone && ! bpftool cgroup show '$CG' | grep -q ."
out=$(in_cg "$PSQL" -X "$DIRECT" -Atc 'SELECT 1' 2>&1)
check "after the uninstall the agent goes straight to the database again" grep -q password <<<"$out"
podman rm -f "$NAME" >/dev/null 2>&1
check "no container of this test is left" bash -c "! podman ps -a --format '{{.Names}}' | grep -q '^$NAME'"
echo "# $((SECONDS - t0)) s"
finish
