#!/usr/bin/env bash
# The Kubernetes side of pgward for real, as root, without a cluster: pgwardd with its redirect
# on (its own pin path) and pgward-k8s-sync (deploy/kubernetes/pgward-k8s-sync, the
# DaemonSet's sidecar) beside it, as on a node:
#   - fake kubepods cgroup trees under the real cgroup2 mount, for both kubelet cgroup drivers
#     (systemd: kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/
#     cri-containerd-<id>.scope; cgroupfs: kubepods/burstable/pod<uid>/<id>), below a parent of
#     this test's own (as a kubelet --cgroup-root would put them);
#   - a stand-in for the API server on 127.0.0.1 (tests/k8s/fake_apiserver.py: the pod list of
#     the node, label and field selectors, watch, a bearer token), the one thing not run here;
#   - the sync steers the labelled pods' cgroups (pgwardctl cgroup add), never an unlabelled
#     pod, a pod of another node or its own; a process in a labelled pod's container cgroup
#     dialling PostgreSQL lands in pgwardd (its policy refuses DDL naming the rule) while an
#     unlabelled pod's is not steered; pods that lose the label or disappear are unsteered;
#   - an API that is down or answers garbage changes nothing (fail closed) and shows in
#     readiness;
#   - the ConfigMap's hot reload: the kubelet's ..data symlink swap, emulated exactly; the sync
#     reloads pgwardd; a bad new file is refused and the old policy stays;
#   - the DaemonSet's liveness and readiness commands, run as written in daemonset.yaml;
#   - an agent in its own network namespace (a pod's usual case) is served by pgwardd through the
#     listener pgwardd opens inside that namespace (redirect.netns_listeners), never reaching a
#     server in the namespace; tests/bpf/netns.sh covers those listeners in depth.
# "Not steered" shows as ECONNREFUSED: nothing listens on 127.0.0.x:5432.
#
# Standalone: BUILD=build-ro bash tests/bpf/k8s.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
PY=/usr/bin/python3
SYNC=$top/deploy/kubernetes/pgward-k8s-sync
# shellcheck source=../../scripts/pgtmp.sh
source "$top/scripts/pgtmp.sh"
# shellcheck source=../integration/lib.sh
source "$top/tests/integration/lib.sh"
# shellcheck source=lib.sh
source "$here/lib.sh"
unset PGOPTIONS PGSERVICE PGWARD_CONTROL_SOCKET

bpf_setup k8s # root or a loud skip; $CG (the configuration's anchor cgroup), $CGROOT, $PIN
for f in "$BUILD/pgwardd" "$CTL" "$SYNC"; do
	[[ -x $f ]] || { echo "not ok - $f is missing"; echo "1..1"; exit 1; }
done
for t in curl jq unshare; do
	command -v "$t" >/dev/null || { echo "not ok - $t is missing"; echo "1..1"; exit 1; }
done

NODE=$CGROOT/pgward-k8s-node-$$ # this test's kubelet cgroup root
W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-k8stest.XXXXXX")
chmod 755 "$W"
SOCK=$W/run/control.sock
LOG=$W/pgwardd.log
CONF_OK=
SYNC_PID=
API_PID=

k8s_cleanup() {
	local d p
	[[ -n $SYNC_PID ]] && kill -TERM -- "-$SYNC_PID" 2>/dev/null
	[[ -n $API_PID ]] && kill -TERM "$API_PID" 2>/dev/null
	pw_cleanup
	for p in "${PW_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	[[ -n $CONF_OK ]] && "$BUILD/pgwardd" --uninstall --config "$W/etc/pgward.json" >/dev/null 2>&1
	sleep 0.2
	if [[ -d $NODE ]]; then
		while IFS= read -r d; do
			while read -r p; do echo "$p" >"$CGROOT/cgroup.procs" 2>/dev/null; done <"$d/cgroup.procs"
		done < <(find "$NODE" -type d)
		find "$NODE" -depth -type d -exec rmdir {} + 2>/dev/null
	fi
	bpf_cleanup
	rm -rf "$W"
}
trap k8s_cleanup EXIT

PGTMP_QUIET=1 pgtmp_start k8stest >/dev/null || { echo "not ok - cluster did not start"; echo "1..1"; exit 1; }
PSQL=$PGTMP_PGBIN/psql
check "no server listens on port 5432 (so that a connect that is not steered is refused)" \
	bash -c "! ss -Hltn 'sport = :5432' | grep -q ."

# --- the node: pods and their cgroups -----------------------------------------------------------------
uuid() { cat /proc/sys/kernel/random/uuid; }
hex64() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
UA=$(uuid) UB=$(uuid) UC=$(uuid) UD=$(uuid) UE=$(uuid) UF=$(uuid)
# A: labelled, systemd driver (burstable)          B: labelled, cgroupfs driver (burstable)
# C: not labelled, cgroupfs (besteffort)            D: labelled, another node (cgroup here anyway)
# E: labelled, the sidecar's own pod (POD_UID)      F: labelled, systemd (guaranteed), cgroup made later
PA=/pgward-k8s-node-$$/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UA//-/_}.slice
PB=/pgward-k8s-node-$$/kubepods/burstable/pod$UB
PC=/pgward-k8s-node-$$/kubepods/besteffort/pod$UC
PD=/pgward-k8s-node-$$/kubepods/burstable/pod$UD
PE=/pgward-k8s-node-$$/kubepods/burstable/pod$UE
PF=/pgward-k8s-node-$$/kubepods.slice/kubepods-pod${UF//-/_}.slice
CA=$CGROOT$PA/cri-containerd-$(hex64).scope
CB=$CGROOT$PB/$(hex64)
CC=$CGROOT$PC/$(hex64)
CE=$CGROOT$PE/$(hex64)
CF=$CGROOT$PF/cri-containerd-$(hex64).scope
mkdir -p "$CA" "$CB" "$CC" "$CGROOT$PD/$(hex64)" "$CE"
check "the fake kubepods trees exist under the real cgroup2 mount ($NODE)" \
	bash -c "test -f '$CA/cgroup.procs' && test -f '$CB/cgroup.procs' && test -f '$CC/cgroup.procs'"

# the API server's pods (the node is node-a); pod NAME UID NODE LABELLED
pod() {
	local lab='{"app": "x"}'
	[[ $4 == yes ]] && lab='{"app": "x", "pgward.io/agent": "true"}'
	printf '{"kind": "Pod", "metadata": {"name": "%s", "namespace": "agents", "uid": "%s", "labels": %s}, "spec": {"nodeName": "%s"}, "status": {"phase": "Running"}}' "$1" "$2" "$lab" "$3"
}
set_pods() { # the pods, as the API will list them from now on
	local IFS=,
	echo "[$*]" >"$W/pods.json.tmp" && mv "$W/pods.json.tmp" "$W/pods.json"
}
set_pods "$(pod a "$UA" node-a yes)" "$(pod b "$UB" node-a yes)" "$(pod c "$UC" node-a no)" \
	"$(pod d "$UD" node-b yes)" "$(pod e "$UE" node-a yes)"
echo ok >"$W/api.mode"
echo "test-token-$$" >"$W/token"
$PY "$top/tests/k8s/fake_apiserver.py" "$W/api.port" "$W/pods.json" "$W/api.mode" "test-token-$$" "$W/api.log" \
	2>"$W/api.err" &
API_PID=$!
for _ in $(seq 50); do [[ -s $W/api.port ]] && break; sleep 0.1; done
APORT=$(cat "$W/api.port" 2>/dev/null)
check "the stand-in API server listens on 127.0.0.1:$APORT" test -n "$APORT"

# --- pgwardd, its configuration mounted the way the kubelet mounts a ConfigMap --------------------------
PORT=$(pw_free_port)
SPORT=$(pw_free_port)
mkdir -p "$W/run" "$W/state" "$W/secrets" "$W/etc"
chmod 700 "$W/state" "$W/secrets"
install -m 600 "$PGTMP_DIR/postgres.pw" "$W/secrets/upstream.pw"
config() { # config RULE-NAME [EXTRA-TOP-LEVEL-JSON]: the configuration, with the DDL rule so named
	cat <<EOF
{
  "workers": 2,
  "log_level": "info",
  "shutdown_grace_seconds": 2,
  "listen": [{"host": "127.0.0.1", "port": $PORT}],
  "upstreams": {"db": {"host": "127.0.0.1", "port": $PGTMP_PORT, "user": "postgres",
                       "password_file": "$W/secrets/upstream.pw", "sslmode": "disable"}},
  "redirect": {"cgroups": ["$CG"], "ports": [5432], "fail_mode": "closed", "fastpath": false,
               "heartbeat_timeout_seconds": 1, "pin_path": "$PIN",
               "overrides": "$W/state/cgroup-overrides.json",
               "listen4": "127.0.0.1", "listen4_port": $SPORT, "listen6": ""},
  "control": {"socket": "$SOCK", "mode": "0600"},
  ${2:-}
  "identities": [
    {"name": "pod-agent", "match": {"cgroup": "/pgward-k8s-node-$$/kubepods*"}, "auth": "trust", "upstream": "db",
     "rules": [{"name": "$1", "action": "deny", "class": ["ddl", "dcl", "truncate"]},
               {"name": "read", "action": "allow", "class": ["select", "set", "transaction"]}]}
  ]
}
EOF
}
# the kubelet's AtomicWriter: files in a timestamped directory, ..data a symlink to it, each
# key a symlink through ..data; an update writes a new directory, points ..data_tmp at it,
# renames ..data_tmp over ..data (one atomic rename) and removes the old directory
CM_N=0
cm_write() { # cm_write CONTENT-FILE
	local old new
	CM_N=$((CM_N + 1))
	new=..2026_12_01_00_00_0${CM_N}.000000000
	mkdir "$W/etc/$new"
	install -m 400 "$1" "$W/etc/$new/pgward.json"
	old=$(readlink "$W/etc/..data" 2>/dev/null)
	ln -s "$new" "$W/etc/..data_tmp"
	mv -T "$W/etc/..data_tmp" "$W/etc/..data"
	[[ -e $W/etc/pgward.json ]] || ln -s ..data/pgward.json "$W/etc/pgward.json"
	[[ -n $old ]] && rm -rf "${W:?}/etc/$old"
	return 0
}
config "no DDL (v1)" >"$W/v1.json"
cm_write "$W/v1.json"
check "the ConfigMap mount: pgward.json -> ..data/pgward.json, ..data -> a timestamped directory" \
	bash -c "test -L '$W/etc/pgward.json' && test -L '$W/etc/..data' && grep -q 'no DDL (v1)' '$W/etc/pgward.json'"
check "pgwardd starts with the redirect and the control socket" pw_start_pgwardd "$W/etc/pgward.json" "$LOG"
[[ -S $SOCK ]] || {
	sed 's/^/#   /' "$LOG"
	finish
	exit 1
}
CONF_OK=1
export PGWARD_CONTROL_SOCKET=$SOCK

# --- the DaemonSet's probes, as written ----------------------------------------------------------------
(cd "$top/tests/k8s" && node -e '
const fs = require("fs"), YAML = require("yaml");
const ds = YAML.parseAllDocuments(fs.readFileSync(process.argv[1], "utf8")).map((d) => d.toJS()).find((d) => d.kind === "DaemonSet");
const c = ds.spec.template.spec.containers.find((c) => c.name === "pgwardd");
fs.writeFileSync(process.argv[2], JSON.stringify({live: c.livenessProbe.exec.command, ready: c.readinessProbe.exec.command}));
' "$top/deploy/kubernetes/daemonset.yaml" "$W/probes.json") 2>"$W/probes.err"
probe() { # probe live|ready: runs the DaemonSet's command with $BUILD's pgwardctl first in PATH
	local -a cmd
	mapfile -t cmd < <(jq -r ".$1[]" "$W/probes.json")
	((${#cmd[@]})) && PATH=$BUILD:$PATH "${cmd[@]}"
}
check "the DaemonSet's liveness probe passes against the running pgwardd" probe live
check "the DaemonSet's readiness probe passes: the redirect is attached" probe ready
check "  ... and the readiness probe fails when pgwardd does not answer" \
	bash -c "PGWARD_CONTROL_SOCKET='$W/nothing.sock' PATH='$BUILD:$PATH' $(jq -r '.ready | @sh' "$W/probes.json" 2>/dev/null || echo false); test \$? != 0"

# --- the sidecar ---------------------------------------------------------------------------------------
export NODE_NAME=node-a POD_UID=$UE PGWARD_K8S_API=http://127.0.0.1:$APORT PGWARD_K8S_TOKEN_FILE=$W/token \
	PGWARD_CONFIG_DIRS="$W/etc $W/secrets" PGWARD_STATE_DIR=$W/run PGWARD_WATCH_SECONDS=5 \
	PGWARD_RETRY_SECONDS=0.5 PGWARD_READY_SECONDS=3 PGWARDCTL=$CTL
setsid "$SYNC" run >"$W/sync.log" 2>&1 &
SYNC_PID=$!

# steered_set: the runtime cgroups in pgwardd's scope, sorted, one a line
steered_set() { "$CTL" -j cgroup show | jq -r '[.[] | select(.source == "runtime") | .path] | sort | .[]'; }
# wait_set EXPECTED...: up to 15 s for the steered set to be exactly these paths
wait_set() {
	local want i
	want=$(printf '%s\n' "$@" | sed '/^$/d' | LC_ALL=C sort)
	for ((i = 0; i < 150; i++)); do
		[[ $(steered_set 2>/dev/null | LC_ALL=C sort) == "$want" ]] && return 0
		sleep 0.1
	done
	echo "steered: $(steered_set | tr '\n' ' '); expected: $(echo "$want" | tr '\n' ' ')" >&2
	return 1
}
check "the sync steers exactly the labelled pods of node-a: A (systemd driver) and B (cgroupfs driver)" \
	wait_set "$PA" "$PB"
steered_set >"$W/set1" 2>&1
check "  ... not C (unlabelled), D (another node), E (the sidecar's own pod)" bash -c "! grep -Eq '${UC}|${UD}|${UE}' '$W/set1'"
check "the sync logged why it skipped its own pod" pw_wait_log "$W/sync.log" "agents/e is pgward's own pod" 5
check "the API server got the node's field selector, the agent label selector and the bearer token" \
	jq -se 'any(.[]; .query.fieldSelector == "spec.nodeName=node-a" and .query.labelSelector == "pgward.io/agent=true" and .auth == true)' "$W/api.log"
check "the sync watches between lists (watch=1 from the list's resourceVersion)" \
	bash -c 'for i in $(seq 50); do jq -se "any(.[]; .query.watch == \"1\" and (.query.resourceVersion | length) > 0)" "$1" && exit 0; sleep 0.1; done; exit 1' _ "$W/api.log"
check "the sync's readiness passes once it has a complete pod list" "$SYNC" ready

# --- agents in the pods' container cgroups ---------------------------------------------------------------
# agent CGDIR HOST SQL: psql as uid 1 inside CGDIR dialling HOST:5432; output in $OUT
agent() {
	OUT=$(timeout 20 bash -c 'echo $$ >"$1/cgroup.procs" || exit 97; shift
		exec setpriv --reuid=1 --regid=1 --clear-groups "$@"' _ "$1" \
		"$PSQL" -X -At "host=$2 port=5432 user=postgres dbname=postgres sslmode=disable connect_timeout=5" -c "$3" 2>&1)
}
steered() { # steered CGDIR: a SELECT through pgwardd answers 1
	agent "$1" 127.0.0.2 "SELECT 1"
	[[ $OUT == 1 ]] || { echo "got: $OUT" >&2; return 1; }
}
direct() { # direct CGDIR: the connect is not steered (refused: nothing listens on :5432)
	agent "$1" 127.0.0.2 "SELECT 1"
	[[ $OUT == *"Connection refused"* ]] || { echo "got: $OUT" >&2; return 1; }
}
refused_by() { # refused_by CGDIR RULE: DDL is refused by pgwardd naming the rule
	agent "$1" 127.0.0.3 "CREATE TABLE pwk8s_t (i int)"
	[[ $OUT == *"identity pod-agent"*"$2"* ]] || { echo "got: $OUT" >&2; return 1; }
}
check "a process in pod A's container (systemd driver) dialling PostgreSQL is steered into pgwardd" steered "$CA"
check "  ... and pgwardd's policy refuses its DDL, naming identity and rule" refused_by "$CA" "no DDL (v1)"
check "a process in pod B's container (cgroupfs driver) is steered too" steered "$CB"
check "  ... and its DDL refused by the policy" refused_by "$CB" "no DDL (v1)"
check "a process in pod C's container (not labelled) is not steered" direct "$CC"
check "a process in the sidecar's own pod E is not steered" direct "$CE"
check "nothing was created on the server" test "$(pgtmp_psql -At -c "SELECT to_regclass('pwk8s_t') IS NULL")" = t
check "pgwardd saw the steered sessions: its log names the pods' container cgroups" \
	bash -c "grep -q '${CA#"$CGROOT"}' '$LOG' && grep -q '${CB#"$CGROOT"}' '$LOG' || { grep -i session '$LOG' | tail -5 >&2; false; }"

# an agent in its own network namespace (as a pod with its own network usually is): the
# connect is judged (the cgroup is in scope) and steered to 127.0.0.1:$SPORT of ITS namespace,
# where pgwardd opens a listener of its own once a process of the scope is in it: served by
# pgwardd, never let through to the server that listens on 5432 inside that namespace
netns_try() { # netns_try CGDIR WAIT: in a new netns with lo up, a listener on 127.0.0.1:5432 that
	# answers every connection with FATAL "netns listener"; psql from CGDIR dials it (WAIT=1:
	# once pgwardd listens on 127.0.0.1:$SPORT in the namespace, up to 5 s)
	OUT=$(timeout 20 unshare -n bash -c 'ip link set lo up || exit 96
		"$2" "$3" 5432 "netns listener" 8 &
		sleep 0.5
		echo $$ >"$1/cgroup.procs" || exit 97
		if [[ $6 == 1 ]]; then
			for i in $(seq 100); do ss -Hltn "sport = :$5" | grep -q . && break; sleep 0.05; done
		fi
		setpriv --reuid=1 --regid=1 --clear-groups "$4" -X -At "host=127.0.0.1 port=5432 user=postgres dbname=postgres sslmode=disable connect_timeout=3" -c "SELECT 1" 2>&1
		kill %1' _ "$1" "$PY" "$here/decoy_pg.py" "$PSQL" "$SPORT" "$2" 2>&1)
}
netns_try "$CC" 0
check "netns control: from an unlabelled pod in its own network namespace, psql reaches that namespace's listener" \
	bash -c '[[ $1 == *"netns listener"* ]] || { echo "got: $1" >&2; false; }' _ "$OUT"
netns_try "$CA" 1
check "from a labelled pod in its own network namespace, psql is served by pgwardd through its listener in that namespace, never reaching the namespace's server" \
	bash -c '[[ $1 != *"netns listener"* && $1 == 1 ]] || { echo "got: $1" >&2; false; }' _ "$OUT"
check "  ... pgwardd's log names the pod's namespace listener" \
	pw_wait_log "$LOG" "network namespace net:\\[[0-9]*\\] (pid [0-9]*): listening on 127.0.0.1:$SPORT for steered connections" 3

# --- label removed, pod gone, pod added late --------------------------------------------------------------
set_pods "$(pod a "$UA" node-a yes)" "$(pod b "$UB" node-a no)" "$(pod c "$UC" node-a no)" \
	"$(pod d "$UD" node-b yes)" "$(pod e "$UE" node-a yes)" "$(pod f "$UF" node-a yes)"
check "pod B loses the label: the sync unsteers it (pod F, labelled, has no cgroup yet)" wait_set "$PA"
check "  ... a process in pod B is no longer steered" direct "$CB"
check "  ... the sync said F has no cgroup yet" pw_wait_log "$W/sync.log" "agents/f ($UF): no cgroup on this node yet" 5
mkdir -p "$CF"
check "pod F's cgroup appears (systemd driver, guaranteed QoS): steered at the next pass" wait_set "$PA" "$PF"
check "  ... a process in pod F is steered" steered "$CF"
set_pods "$(pod c "$UC" node-a no)" "$(pod d "$UD" node-b yes)" "$(pod e "$UE" node-a yes)" "$(pod f "$UF" node-a yes)"
check "pod A disappears from the API: the sync unsteers it" wait_set "$PF"
check "  ... a process still in pod A's cgroup is no longer steered" direct "$CA"
check "the override file (kept on the host for the next pgwardd) holds the changes" \
	jq -e --arg f "$CGROOT$PF" --arg a "$CGROOT$PA" '(.add | index($f)) != null and (.add | index($a)) == null' "$W/state/cgroup-overrides.json"

# --- the API fails: nothing changes, readiness says so ----------------------------------------------------
echo down >"$W/api.mode"
set_pods "$(pod c "$UC" node-a no)" # (what a good answer would say: no agent pod at all)
sleep 4
check "API down (503): the steered set is kept (pod F still steered)" wait_set "$PF"
check "  ... a process in pod F is still steered" steered "$CF"
check "  ... the sync logged that it keeps the cgroups" pw_wait_log "$W/sync.log" "keeping the cgroups in scope as they are" 5
check "  ... and its readiness fails (the last complete list is too old)" bash -c "! '$SYNC' ready 2>/dev/null"
echo garbage >"$W/api.mode"
sleep 2
check "API answers something that is not a PodList: the set is kept" wait_set "$PF"
check "  ... logged" pw_wait_log "$W/sync.log" "not a PodList" 5
echo unauthorized >"$W/api.mode"
sleep 2
check "API refuses the token (401): the set is kept" wait_set "$PF"
echo ok >"$W/api.mode"
check "API back, and its list has no agent pod: pod F is unsteered" wait_set
check "  ... readiness passes again" bash -c "for i in \$(seq 50); do '$SYNC' ready 2>/dev/null && exit 0; sleep 0.1; done; exit 1"
set_pods "$(pod a "$UA" node-a yes)" "$(pod b "$UB" node-a yes)"
check "the labelled pods come back: A and B steered again" wait_set "$PA" "$PB"
rmdir "$CB" "$CGROOT$PB"
set_pods "$(pod a "$UA" node-a yes)"
check "pod B is deleted and the kubelet removed its cgroup: the sync unsteers the vanished path" wait_set "$PA"

# --- the ConfigMap changes: the ..data swap, the reload --------------------------------------------------
config "no DDL (v2)" >"$W/v2.json"
cm_write "$W/v2.json"
check "ConfigMap updated (..data swapped to a new directory): the sync reloads pgwardd" \
	pw_wait_log "$W/sync.log" "configuration changed: pgwardd reloaded it" 10
check "  ... pgwardd logged the reload" pw_wait_log "$LOG" "reload" 5
check "  ... new sessions get the new policy (the rule is now \"no DDL (v2)\")" refused_by "$CA" "no DDL (v2)"
config "no DDL (v3)" '"bogus_key": 1,' >"$W/v3.json"
cm_write "$W/v3.json"
check "a bad ConfigMap (an unknown key): pgwardd refuses it, the sync logs it" \
	pw_wait_log "$W/sync.log" "refused the new configuration and keeps the old one" 10
check "  ... the old policy stays in force (\"no DDL (v2)\")" refused_by "$CA" "no DDL (v2)"
check "  ... the sync's readiness fails, naming the refusal" bash -c "! '$SYNC' ready 2>'$W/ready.err' && grep -q bogus_key '$W/ready.err'"
check "  ... pgwardd still runs and steers" steered "$CA"
config "no DDL (v4)" >"$W/v4.json"
cm_write "$W/v4.json"
check "a good ConfigMap again: the sync reloads pgwardd (a second successful reload)" \
	bash -c "for i in \$(seq 100); do test \$(grep -c 'configuration changed: pgwardd reloaded it' '$W/sync.log') -ge 2 && exit 0; sleep 0.1; done; exit 1"
check "  ... new sessions get it" refused_by "$CA" "no DDL (v4)"
check "  ... and the sync's readiness passes again" "$SYNC" ready
check "the sync is still running" kill -0 "$SYNC_PID"

kill -TERM -- "-$SYNC_PID" 2>/dev/null
wait "$SYNC_PID" 2>/dev/null
SYNC_PID=
kill -TERM "$PGWARDD_PID"
wait "$PGWARDD_PID"
check "pgwardd stopped cleanly" test $? = 0
check "pgwardd --uninstall --config removes this test's pins" \
	bash -c "'$BUILD/pgwardd' --uninstall --config '$W/etc/pgward.json' && test ! -e '$PIN'"
finish
