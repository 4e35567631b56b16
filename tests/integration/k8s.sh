#!/usr/bin/env bash
# deploy/kubernetes, offline (no cluster runs here):
#   - every manifest validated strictly against Kubernetes' own resource schemas
#     (tests/k8s/validate.cjs: kubernetes-models' validators, generated from the API server's
#     OpenAPI definitions; unknown fields, wrong types, duplicate keys fail), and broken copies
#     shown to fail, so the validator is known to bite;
#   - the fields the DaemonSet needs, asserted one by one (privileged, hostNetwork, hostPID,
#     bpffs Bidirectional, the host cgroup root, /proc, system-node-critical, tolerations,
#     requests, probes through pgwardctl, no Service, ConfigMap and Secret wiring, RBAC);
#   - the ConfigMap's pgward.json passes `pgwardctl config check` with the Secret's files
#     written out and the node's paths moved into a temporary directory, and a broken copy
#     does not;
#   - pgward-k8s-sync's pod-to-cgroup resolution on fake cgroup trees of both drivers.
# The validator's packages are installed by `npm ci` from tests/k8s/package-lock.json when
# tests/k8s/node_modules is missing (the npm registry once; offline afterwards).
#
# Standalone: BUILD=build-ro bash tests/integration/k8s.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
PY=/usr/bin/python3
K=$top/deploy/kubernetes
V=$top/tests/k8s
SYNC=$K/pgward-k8s-sync
# shellcheck source=lib.sh
source "$here/lib.sh"

T=$(mktemp -d "${TMPDIR:-/tmp}/pgward-k8s.XXXXXX")
ANCHOR=
cleanup() {
	[[ -n $ANCHOR ]] && rmdir "$ANCHOR" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

for t in node npm "$CTL"; do
	command -v "$t" >/dev/null || {
		echo "not ok - $t is missing (node and npm: scripts/deps.sh; pgwardctl: make BUILD=...)"
		echo "1..1"
		exit 1
	}
done

# --- the validator's packages ----------------------------------------------------------------------
if [[ ! -d $V/node_modules/kubernetes-models || ! -d $V/node_modules/yaml ]]; then
	echo "# installing the validator's packages: npm ci in tests/k8s"
	(cd "$V" && npm ci --no-audit --no-fund --loglevel=error) >"$T/npm.log" 2>&1
	check "npm ci installed the validator from tests/k8s/package-lock.json" \
		bash -c "test -d '$V/node_modules/kubernetes-models' || { tail -20 '$T/npm.log' >&2; false; }"
fi
check "the installed packages are the locked ones (npm ls)" bash -c "cd '$V' && npm ls --all >/dev/null"

# --- strict schema validation of every manifest --------------------------------------------------
run_tap node "$V/validate.cjs" "$K"

# broken copies must fail, each for its own reason
# broken NAME WHAT-IN-OUTPUT: validates $T/broken/NAME.yaml, expects exit 1 and that text
broken() {
	local out rc
	out=$(node "$V/validate.cjs" "$T/broken/$1.yaml" 2>&1)
	rc=$?
	[[ $rc == 1 && $out == *"$2"* ]] || {
		echo "exit $rc, expected 1 and \"$2\": $out" >&2
		return 1
	}
}
mkdir -p "$T/broken"
sed 's/mountPropagation: Bidirectional/mountPropogation: Bidirectional/' "$K/daemonset.yaml" >"$T/broken/typo.yaml"
check "a broken copy fails: a misspelt field (mountPropogation) is an unknown field" \
	broken typo "volumeMounts/3/mountPropogation: unknown field"
sed 's/^      hostPID: true/      hostPID: true\n      hostIPC2: true/' "$K/daemonset.yaml" >"$T/broken/unknown.yaml"
check "a broken copy fails: a field Kubernetes does not have (spec.template.spec.hostIPC2)" \
	broken unknown "/spec/template/spec/hostIPC2: unknown field"
sed 's/^            runAsUser: 0$/            runAsUser: 0\n            runAsUsr: 0/' "$K/daemonset.yaml" >"$T/broken/deep.yaml"
check "a broken copy fails: an unknown field deep in a securityContext" broken deep "securityContext/runAsUsr: unknown field"
sed '0,/periodSeconds: 10/s//periodSeconds: "10"/' "$K/daemonset.yaml" >"$T/broken/type.yaml"
check "a broken copy fails: a string where an integer is expected (periodSeconds: \"10\")" \
	broken type 'periodSeconds: type {"type":"integer"}'
sed 's/type: RollingUpdate/type: Rolling/' "$K/daemonset.yaml" >"$T/broken/enum.yaml"
check "a broken copy fails: an updateStrategy type outside the enum" broken enum "updateStrategy/type: enum"
sed '0,/^  selector:/{/^  selector:/d}' "$K/daemonset.yaml" | sed '/^    matchLabels:$/,+2d' >"$T/broken/required.yaml"
check "a broken copy fails: a DaemonSet without spec.selector" broken required '"missingProperty":"selector"'
sed 's/^      hostNetwork: true/      hostNetwork: true\n      hostNetwork: false/' "$K/daemonset.yaml" >"$T/broken/dup.yaml"
check "a broken copy fails: a duplicate key" broken dup "unique"
sed 's/^kind: DaemonSet/kind: DaemonSett/' "$K/daemonset.yaml" >"$T/broken/kind.yaml"
check "a broken copy fails: an unknown kind" broken kind "unknown apiVersion/kind"
sed 's/^  namespace: pgward-system$/  namespaces: pgward-system/' "$K/configmap.yaml" >"$T/broken/cm.yaml"
check "a broken copy fails: metadata.namespaces (ConfigMap)" broken cm "/metadata/namespaces: unknown field"

# --- the fields, asserted ------------------------------------------------------------------------------
# every document of every manifest as one JSON array
(cd "$V" && node -e '
const fs = require("fs"), path = require("path"), YAML = require("yaml");
const dir = process.argv[1], out = [];
for (const f of fs.readdirSync(dir).sort())
  if (/\.ya?ml$/.test(f) && !/^kustomization/.test(f))
    for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, f), "utf8")))
      if (d.contents !== null) out.push(Object.assign(d.toJS(), {"__file": f}));
process.stdout.write(JSON.stringify(out));' "$K") >"$T/all.json"
check "the manifests read as JSON" test -s "$T/all.json"
VERSION=$("$BUILD/pgwardd" --version 2>/dev/null | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -1)

# kc NAME PYEXPR: the expression holds over the manifests. In scope: docs (all), ds (the
# DaemonSet), pod (its pod spec), C (its containers by name), I (init containers by name),
# vol (volumes by name), mounts(c) (a container's mounts by name), cm (the ConfigMap), sec
# (the Secret), P (the ConfigMap's pgward.json), E (environment)
kc() {
	check "$1" env VERSION="$VERSION" $PY -c '
import json, os, sys
E = os.environ
docs = json.load(open(sys.argv[1]))
def one(kind):
    l = [d for d in docs if d.get("kind") == kind]
    assert len(l) == 1, "%d %s objects" % (len(l), kind)
    return l[0]
try:
    ds = one("DaemonSet"); pod = ds["spec"]["template"]["spec"]
    C = {c["name"]: c for c in pod.get("containers", [])}
    I = {c["name"]: c for c in pod.get("initContainers", [])}
    vol = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = lambda c: {m["name"]: m for m in c.get("volumeMounts", [])}
    cm = one("ConfigMap"); sec = one("Secret")
    P = json.loads(cm["data"]["pgward.json"])
    ok = eval("(" + sys.argv[2] + "\n)")
except Exception as e:
    print("%s: %s" % (type(e).__name__, e), file=sys.stderr)
    ok = False
sys.exit(0 if ok else 1)' "$T/all.json" "$2"
}

kc "one DaemonSet, apps/v1, in pgward-system" 'ds["apiVersion"] == "apps/v1" and ds["metadata"]["namespace"] == "pgward-system"'
kc "no Service object: each node's agents are steered locally" 'not [d for d in docs if d.get("kind") in ("Service", "Ingress", "Endpoints", "EndpointSlice")]'
kc "no container port is published (no containerPort, no hostPort)" \
	'not any(c.get("ports") for c in list(C.values()) + list(I.values()))'
kc "the containers: pgwardd and the k8s-sync sidecar" 'set(C) == {"pgwardd", "k8s-sync"}'
kc "pgwardd is privileged (a Bidirectional mount needs it)" 'C["pgwardd"]["securityContext"]["privileged"] is True'
kc "hostNetwork and hostPID" 'pod["hostNetwork"] is True and pod["hostPID"] is True'
kc "dnsPolicy ClusterFirstWithHostNet (cluster DNS names of upstreams resolve on the host network)" 'pod["dnsPolicy"] == "ClusterFirstWithHostNet"'
kc "/sys/fs/bpf: a hostPath mounted at /sys/fs/bpf with mountPropagation Bidirectional" '
[(v["hostPath"]["path"], mounts(C["pgwardd"])[n]["mountPath"], mounts(C["pgwardd"])[n].get("mountPropagation"))
 for n, v in vol.items() if "hostPath" in v and v["hostPath"]["path"] == "/sys/fs/bpf"] == [("/sys/fs/bpf", "/sys/fs/bpf", "Bidirectional")]'
kc "the host cgroup root: hostPath /sys/fs/cgroup (a Directory) at /sys/fs/cgroup, writable for pgwardd, read-only for the sidecar" '
[n for n, v in vol.items() if v.get("hostPath", {}).get("path") == "/sys/fs/cgroup"] == ["cgroup"]
and vol["cgroup"]["hostPath"]["type"] == "Directory"
and mounts(C["pgwardd"])["cgroup"]["mountPath"] == "/sys/fs/cgroup" and not mounts(C["pgwardd"])["cgroup"].get("readOnly")
and mounts(C["k8s-sync"])["cgroup"]["mountPath"] == "/sys/fs/cgroup" and mounts(C["k8s-sync"])["cgroup"]["readOnly"] is True'
kc "the host /proc: hostPath /proc mounted read-only at /host/proc, and pgwardd enters its cgroup namespace from it" '
vol["host-proc"]["hostPath"]["path"] == "/proc" and mounts(C["pgwardd"])["host-proc"] == {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True}
and C["pgwardd"]["command"][:2] == ["nsenter", "--cgroup=/host/proc/1/ns/cgroup"]'
kc "pgwardd runs as pgwardd --config /etc/pgward/pgward.json" 'C["pgwardd"]["command"][-3:] == ["pgwardd", "--config", "/etc/pgward/pgward.json"]'
kc "priorityClassName system-node-critical" 'pod["priorityClassName"] == "system-node-critical"'
kc "tolerations: every taint (operator Exists, no key, no effect)" '{"operator": "Exists"} in pod["tolerations"]'
kc "break glass: the DaemonSet keeps off nodes labelled pgward.io/break-glass" '
pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
  == [{"matchExpressions": [{"key": "pgward.io/break-glass", "operator": "DoesNotExist"}]}]'
kc "every container and init container requests cpu and memory" '
all(c["resources"]["requests"].get("cpu") and c["resources"]["requests"].get("memory") for c in list(C.values()) + list(I.values()))'
kc "updateStrategy RollingUpdate, maxUnavailable 1, maxSurge 0 (never two pgwardd on a node)" '
ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}'
kc "the image is localhost/pgward:$VERSION (pgwardd --version), IfNotPresent, everywhere" '
E["VERSION"] and all(c["image"] == "localhost/pgward:" + E["VERSION"] and c["imagePullPolicy"] == "IfNotPresent" for c in list(C.values()) + list(I.values()))'
kc "liveness: an exec probe running pgwardctl stats" 'C["pgwardd"]["livenessProbe"]["exec"]["command"] == ["pgwardctl", "stats"]'
kc "readiness: an exec probe through pgwardctl prog show, requiring pw_connect4 attached to cgroup/connect4" '
"pgwardctl -j prog show" in " ".join(C["pgwardd"]["readinessProbe"]["exec"]["command"])
and "cgroup/connect4" in " ".join(C["pgwardd"]["readinessProbe"]["exec"]["command"])'
kc "the sidecar: pgward-k8s-sync run, NODE_NAME from spec.nodeName, POD_UID from metadata.uid, its readiness from pgward-k8s-sync ready" '
C["k8s-sync"]["command"] == ["/usr/lib/pgward/pgward-k8s-sync", "run"]
and {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in C["k8s-sync"]["env"]
and {"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}} in C["k8s-sync"]["env"]
and C["k8s-sync"]["readinessProbe"]["exec"]["command"] == ["/usr/lib/pgward/pgward-k8s-sync", "ready"]'
kc "the sidecar holds no capability and cannot escalate" '
C["k8s-sync"]["securityContext"]["capabilities"] == {"drop": ["ALL"]} and C["k8s-sync"]["securityContext"]["allowPrivilegeEscalation"] is False
and not C["k8s-sync"]["securityContext"].get("privileged")'
kc "/run/pgward: one emptyDir shared by pgwardd and the sidecar (the control socket), and the configuration's control socket is there" '
"emptyDir" in vol["run"] and mounts(C["pgwardd"])["run"]["mountPath"] == "/run/pgward" == mounts(C["k8s-sync"])["run"]["mountPath"]
and P["control"]["socket"] == "/run/pgward/control.sock"'
kc "the ConfigMap pgward-config (key pgward.json) is mounted whole (no subPath: updates arrive) at /etc/pgward in both containers" '
vol["config"]["configMap"]["name"] == cm["metadata"]["name"] == "pgward-config"
and all(mounts(C[c])["config"]["mountPath"] == "/etc/pgward" and "subPath" not in mounts(C[c])["config"] for c in C)'
kc "the Secret pgward-secrets is mounted whole at /run/secrets/pgward (0400) in both containers" '
vol["secrets"]["secret"]["secretName"] == sec["metadata"]["name"] == "pgward-secrets" and vol["secrets"]["secret"]["defaultMode"] == 0o400
and all(mounts(C[c])["secrets"]["mountPath"] == "/run/secrets/pgward" and "subPath" not in mounts(C[c])["secrets"] for c in C)'
kc "every secret file pgward.json names is a key of the Secret (upstream password, JWKS)" '
sorted({u["password_file"] for u in P["upstreams"].values() if "password_file" in u} | {P["jwt"]["jwks_file"]})
 == sorted("/run/secrets/pgward/" + k for k in sec["stringData"])'
kc "the Secret holds placeholders, clearly marked" '
all("REPLACE-ME" in v for v in sec["stringData"].values()) and "REPLACE-ME" in sec["metadata"]["annotations"]["pgward.io/placeholder"]'
kc "every path pgward.json names is under a volume mounted into pgwardd" '
all(any(p == m["mountPath"] or p.startswith(m["mountPath"] + "/") for m in C["pgwardd"]["volumeMounts"])
    for p in [P["control"]["socket"], P["audit"]["file"], P["recording"]["dir"], P["redirect"]["overrides"], P["redirect"]["pin_path"], P["jwt"]["jwks_file"]]
           + [u["password_file"] for u in P["upstreams"].values()] + [l["unix"] for l in P["listen"] if "unix" in l])'
kc "the audit trail goes to stdout (the log pipeline) and to a hostPath file" '
P["audit"]["stdout"] is True and vol["audit"]["hostPath"]["path"] == "/var/log/pgward"'
kc "the steered pods survive a restart: redirect.overrides on a hostPath (/var/lib/pgward)" '
P["redirect"]["overrides"].startswith("/var/lib/pgward/") and vol["state"]["hostPath"]["path"] == "/var/lib/pgward"'
kc "fail-closed: redirect.fail_mode closed, pins at /sys/fs/bpf/pgward" 'P["redirect"]["fail_mode"] == "closed" and P["redirect"]["pin_path"] == "/sys/fs/bpf/pgward"'
kc "the configured anchor cgroup is the one the init container makes" '
P["redirect"]["cgroups"] == ["pgward-anchor"] and "mkdir -p /sys/fs/cgroup/pgward-anchor" in I["prepare"]["command"][-1]'
kc "agents are matched by their pod cgroup (/kubepods*, both drivers)" 'all(i["match"].get("cgroup") == "/kubepods*" for i in P["identities"])'
kc "RBAC: the ServiceAccount the DaemonSet uses may only get, list and watch pods" '
pod["serviceAccountName"] == one("ServiceAccount")["metadata"]["name"]
and one("ClusterRole")["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
and one("ClusterRoleBinding")["roleRef"]["name"] == one("ClusterRole")["metadata"]["name"]
and one("ClusterRoleBinding")["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"], "namespace": "pgward-system"}]'
kc "the namespace admits privileged pods (Pod Security)" 'one("Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"'

# --- the ConfigMap's pgward.json passes pgwardctl config check ---------------------------------------
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print([x for x in d if x["kind"]=="ConfigMap"][0]["data"]["pgward.json"], end="")' "$T/all.json" >"$T/pgward.orig.json"
$PY -c 'import json,sys; print(json.dumps(json.loads(open(sys.argv[1]).read())))' "$T/pgward.orig.json" >/dev/null 2>&1
check "the embedded pgward.json is JSON" test $? = 0
mkdir -p "$T/secrets" "$T/lib/recordings" "$T/log" "$T/run"
chmod 700 "$T/secrets" "$T/lib" "$T/log"
$PY -c '
import json, os, sys
d = json.load(open(sys.argv[1]))
s = [x for x in d if x["kind"] == "Secret"][0]
for k, v in s["stringData"].items():
    p = os.path.join(sys.argv[2], k)
    with open(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(v)' "$T/all.json" "$T/secrets"
# the anchor cgroup (relative in the ConfigMap: below the cgroup2 mount): a throwaway one as
# root, else this shell's own (it exists), written as an absolute path
CGROOT=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
if [[ $EUID == 0 && -n $CGROOT ]]; then
	ANCHOR=$CGROOT/pgward-k8s-anchor-$$
	mkdir -p "$ANCHOR"
	ANCHOR_ABS=$ANCHOR
else
	ANCHOR_ABS=$CGROOT$(awk -F: '$1 == "0" {print $3}' /proc/self/cgroup)
fi
sed -e "s#/run/secrets/pgward/#$T/secrets/#g" -e "s#/var/lib/pgward/#$T/lib/#g" -e "s#/var/log/pgward/#$T/log/#g" \
	-e "s#/run/pgward/#$T/run/#g" -e "s#\"pgward-anchor\"#\"$ANCHOR_ABS\"#" "$T/pgward.orig.json" >"$T/pgward.json"
check "the rewrite moved every node path into the temporary directory" \
	bash -c "! grep -Eq '\"/(run|var|etc)/' '$T/pgward.json' && grep -q '$T/secrets/upstream.pw' '$T/pgward.json' && grep -q '\"$ANCHOR_ABS\"' '$T/pgward.json'"
"$CTL" config check "$T/pgward.json" >"$T/check.out" 2>&1
rc=$?
check "pgwardctl config check: the ConfigMap's pgward.json is OK (exit $rc)" \
	bash -c "test $rc = 0 && grep -q ': OK' '$T/check.out' || { cat '$T/check.out' >&2; false; }"
sed 's/"fail_mode": "closed"/"fail_mode": "closd"/' "$T/pgward.json" >"$T/pgward.bad.json"
"$CTL" config check "$T/pgward.bad.json" >"$T/check.bad" 2>&1
rc=$?
check "  ... and a broken copy is refused (exit $rc), naming \$.redirect.fail_mode" \
	bash -c "test $rc = 1 && grep -q 'redirect.fail_mode' '$T/check.bad' || { cat '$T/check.bad' >&2; false; }"

# --- pgward-k8s-sync: the script, and pod UIDs resolved to cgroups on fake trees ---------------------
check "pgward-k8s-sync is executable and bash -n clean" bash -c "test -x '$SYNC' && bash -n '$SYNC'"
if command -v shellcheck >/dev/null; then
	check "pgward-k8s-sync is shellcheck clean" shellcheck "$SYNC"
fi
F=$T/cgfake # a directory tree standing in for the cgroup2 root (resolve only walks names)
U1=0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6 U2=11111111-2222-4333-8444-555555555555
U3=aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee U4=99999999-8888-4777-8666-555555555555
u_() { echo "${1//-/_}"; }
mkdir -p "$F/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$(u_ $U1).slice/cri-containerd-abc.scope" \
	"$F/kubepods.slice/kubepods-pod$(u_ $U2).slice/cri-containerd-def.scope" \
	"$F/kubepods/besteffort/pod$U3/0123456789ab" "$F/kubepods/pod$U4/fedcba987654" \
	"$F/kubepods/burstable/pod$U4-extra" "$F/kubepods/burstable/pod${U3}x"
res() { PGWARD_CGROUP_ROOT=$F "$SYNC" resolve "$1"; }
check "resolve (systemd driver, burstable): the pod's slice, below the mount" \
	test "$(res $U1)" = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod$(u_ $U1).slice"
check "resolve (systemd driver, guaranteed): kubepods-pod<uid>.slice" \
	test "$(res $U2)" = "/kubepods.slice/kubepods-pod$(u_ $U2).slice"
check "resolve (cgroupfs driver, besteffort): kubepods/besteffort/pod<uid>, not a look-alike" \
	test "$(res $U3)" = "/kubepods/besteffort/pod$U3"
check "resolve (cgroupfs driver, guaranteed): kubepods/pod<uid>, not pod<uid>-extra" \
	test "$(res $U4)" = "/kubepods/pod$U4"
check "resolve: a pod without a cgroup here resolves to nothing" \
	test -z "$(res 12345678-1234-4234-8234-123456789abc)"
check "resolve: a UID that is not a lower-case UUID is refused (exit 2)" \
	bash -c "PGWARD_CGROUP_ROOT='$F' '$SYNC' resolve '../*' 2>/dev/null; test \$? = 2"
check "once without NODE_NAME: refused (exit 2)" bash -c "env -u NODE_NAME '$SYNC' once 2>/dev/null; test \$? = 2"
check "plain http to a non-loopback API server is refused: once fails, nothing listed" \
	bash -c "NODE_NAME=n PGWARD_K8S_API=http://192.0.2.1:8080 PGWARD_STATE_DIR='$T/st' PGWARDCTL=false '$SYNC' once 2>'$T/http.err'; test \$? = 1 && grep -q 'https, or http on loopback' '$T/http.err'"
check "ready fails before any good pod list" bash -c "! PGWARD_STATE_DIR='$T/st' '$SYNC' ready 2>/dev/null"
finish
