#!/usr/bin/env node
// Offline validation of Kubernetes manifests against Kubernetes' own resource schemas, strictly.
//
// The schemas are kubernetes-models' validators, generated from the OpenAPI definitions the
// Kubernetes API server publishes (package.json pins the version). They check types, enums,
// formats and required fields, but not unknown fields (the OpenAPI definitions leave objects
// open). Unknown fields are found the way the API server's strict field validation finds
// them: every key of every object is probed by replacing its value with values no type
// accepts (a boolean, then a string); a key the schema knows yields an error at its own
// path, a key it does not know yields none and is reported as unknown. YAML is read strictly
// too: a duplicate key, an alias, or a parse warning is an error.
//
// Usage: node validate.cjs PATH...   (files, or directories: their *.yaml / *.yml)
// Prints TAP: one check per document, one per kustomization; exit 1 when one fails.
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");

const SCHEMAS = path.join(__dirname, "node_modules", "kubernetes-models", "_schemas");
const CLUSTER_SCOPED = new Set(["Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
  "PersistentVolume", "StorageClass", "CustomResourceDefinition", "Node"]);

// apiVersion and kind -> the generated validator (IoK8sApi<Group><Version><Kind>)
function validatorFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" || !/^[A-Z][A-Za-z0-9]*$/.test(kind))
    return null;
  const parts = apiVersion.split("/");
  const group = parts.length === 2 ? parts[0] : "";
  const version = parts.length === 2 ? parts[1] : parts[0];
  if (!/^v[0-9]+((alpha|beta)[0-9]+)?$/.test(version)) return null;
  const g = group === "" ? "Core" : group.split(".")[0];
  const name = "IoK8sApi" + g.charAt(0).toUpperCase() + g.slice(1) +
    version.charAt(0).toUpperCase() + version.slice(1) + kind;
  const file = path.join(SCHEMAS, name + ".js");
  if (!fs.existsSync(file)) return null;
  // the group's short name must really be this group (e.g. "rbac" for rbac.authorization.k8s.io)
  const known = { Core: "", Apps: "apps", Rbac: "rbac.authorization.k8s.io", Batch: "batch",
    Policy: "policy", Networking: "networking.k8s.io", Scheduling: "scheduling.k8s.io",
    Storage: "storage.k8s.io", Autoscaling: "autoscaling", Coordination: "coordination.k8s.io" };
  const G = g.charAt(0).toUpperCase() + g.slice(1);
  if (!(G in known) || known[G] !== group) return null;
  return require(file).validate;
}

const ptr = (segs) => segs.map((s) => "/" + String(s).replace(/~/g, "~0").replace(/\//g, "~1")).join("");

function fmtErr(e) {
  return `${e.instancePath || "/"}: ${e.keyword} ${JSON.stringify(e.params)}`;
}

function setAt(obj, segs, v) {
  let o = obj;
  for (let i = 0; i < segs.length - 1; i++) o = o[segs[i]];
  o[segs[segs.length - 1]] = v;
}

// every key of every object in doc: [path segments]
function keyPaths(node, segs, out) {
  if (Array.isArray(node)) node.forEach((v, i) => keyPaths(v, segs.concat(i), out));
  else if (node && typeof node === "object")
    for (const k of Object.keys(node)) {
      out.push(segs.concat(k));
      keyPaths(node[k], segs.concat(k), out);
    }
  return out;
}

function unknownFields(doc, validate) {
  const unknown = [];
  const probes = [true, "\u0000pgward-probe\u0000"];
  for (const segs of keyPaths(doc, [], [])) {
    if (segs.length === 1 && (segs[0] === "apiVersion" || segs[0] === "kind")) continue;
    const p = ptr(segs);
    let known = false;
    for (const probe of probes) {
      const copy = JSON.parse(JSON.stringify(doc));
      setAt(copy, segs, probe);
      if (validate(copy)) continue;
      if ((validate.errors || []).some((e) => e.instancePath === p || e.instancePath.startsWith(p + "/"))) {
        known = true;
        break;
      }
    }
    if (!known) unknown.push(p);
  }
  // report the outermost unknown key only (its children are unknown by consequence)
  return unknown.filter((u) => !unknown.some((o) => o !== u && u.startsWith(o + "/")));
}

function checkDoc(doc) {
  const problems = [];
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) return ["not a mapping"];
  const validate = validatorFor(doc.apiVersion, doc.kind);
  if (!validate) return [`unknown apiVersion/kind ${JSON.stringify(doc.apiVersion)}/${JSON.stringify(doc.kind)}`];
  if (!validate(doc)) problems.push(...validate.errors.map(fmtErr));
  const md = doc.metadata || {};
  if (typeof md.name !== "string" || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(md.name))
    problems.push("/metadata/name: missing or not a DNS subdomain");
  if (CLUSTER_SCOPED.has(doc.kind)) {
    if (md.namespace !== undefined) problems.push("/metadata/namespace: a cluster-scoped object has none");
  } else if (typeof md.namespace !== "string") problems.push("/metadata/namespace: missing");
  for (const u of unknownFields(doc, validate)) problems.push(`${u}: unknown field`);
  return problems;
}

function readDocs(file) {
  const text = fs.readFileSync(file, "utf8");
  const docs = YAML.parseAllDocuments(text, { uniqueKeys: true, strict: true, prettyErrors: true });
  return docs.map((d) => {
    const errs = d.errors.concat(d.warnings).map((e) => e.message.split("\n")[0]);
    let hasAlias = false;
    YAML.visit(d, { Alias() { hasAlias = true; } });
    if (hasAlias) errs.push("YAML aliases are not allowed in a manifest");
    return { errs, value: errs.length ? null : d.toJS({ maxAliasCount: 0 }) };
  }).filter((d) => d.errs.length || d.value !== null);
}

let n = 0, failed = 0;
function report(ok, name, details) {
  n++;
  if (ok) console.log(`ok ${n} - ${name}`);
  else {
    failed++;
    console.log(`not ok ${n} - ${name}`);
    for (const d of details.slice(0, 30)) console.log(`#   ${d}`);
  }
}

function checkKustomization(file) {
  const dir = path.dirname(file);
  const problems = [];
  let k;
  try {
    const docs = readDocs(file);
    if (docs.length !== 1 || docs[0].errs.length) throw new Error(docs.map((d) => d.errs).flat().join("; ") || "not one document");
    k = docs[0].value;
  } catch (e) {
    report(false, `${file}: kustomization`, [e.message]);
    return;
  }
  const allowed = new Set(["apiVersion", "kind", "resources", "namespace", "labels", "images", "commonAnnotations"]);
  for (const key of Object.keys(k)) if (!allowed.has(key)) problems.push(`/${key}: unknown or unsupported field`);
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization")
    problems.push("apiVersion/kind: expected kustomize.config.k8s.io/v1beta1 Kustomization");
  const res = Array.isArray(k.resources) ? k.resources : [];
  for (const r of res) if (!fs.existsSync(path.join(dir, String(r)))) problems.push(`resources: ${r} does not exist`);
  for (const f of fs.readdirSync(dir))
    if (/\.ya?ml$/.test(f) && f !== path.basename(file) && !res.includes(f)) problems.push(`resources: ${f} is not listed`);
  report(problems.length === 0, `${file}: kustomization (its resources exist, every manifest listed)`, problems);
}

const files = [];
for (const a of process.argv.slice(2)) {
  if (fs.statSync(a).isDirectory())
    for (const f of fs.readdirSync(a).sort()) { if (/\.ya?ml$/.test(f)) files.push(path.join(a, f)); }
  else files.push(a);
}
if (!files.length) {
  console.log("not ok 1 - no manifest given\n1..1");
  process.exit(1);
}
for (const file of files) {
  if (/^kustomization\.ya?ml$/.test(path.basename(file))) {
    checkKustomization(file);
    continue;
  }
  let docs;
  try {
    docs = readDocs(file);
  } catch (e) {
    report(false, `${file}: readable`, [e.message]);
    continue;
  }
  if (!docs.length) report(false, `${file}: holds a manifest`, ["no document"]);
  docs.forEach((d, i) => {
    const what = d.value && typeof d.value === "object" ? `${d.value.kind}/${(d.value.metadata || {}).name}` : `document ${i + 1}`;
    if (d.errs.length) report(false, `${file}: ${what}: YAML`, d.errs);
    else {
      const p = checkDoc(d.value);
      report(p.length === 0, `${file}: ${what} valid (schema, no unknown field)`, p);
    }
  });
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
