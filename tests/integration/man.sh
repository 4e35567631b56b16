#!/usr/bin/env bash
# The man pages pgwardd.8 and pgward.json.5 kept true (pgwardctl.8 has its own generator and
# ctl_docs.sh; here it is only rendered and its cross references resolved):
#   - the three pages render without a warning (groff -ww, man --warnings; mandoc -T lint
#     when it is installed);
#   - pgwardd.8's OPTIONS are the options pgwardd accepts (its getopt table in
#     user/pgwardd.c) and every option its usage() prints, short letters included;
#   - pgward.json.5's KEYS are, object by object, the keys the configuration parsers accept:
#     read from their own key tables in user/config*.c (every pw_jp_check_keys call, its
#     function mapped to the object's path below), and those tables proven to be what the
#     built parser enforces (pgwardctl config check asked with an unknown key in each object);
#   - the checker itself fails on a page with a key or an option taken out or put in;
#   - the page's example configuration passes pgwardctl config check;
#   - every cross reference NAME(N) resolves: ours to docs/NAME.N, others to an installed page;
#     every docs/*.md named exists.
# Environment: BUILD (default build).
# shellcheck source-path=SCRIPTDIR disable=SC2016 # bash -c scripts take their arguments as $1...
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
# shellcheck source=lib.sh
source "$here/lib.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-man.XXXXXX")
trap 'rm -rf "$W"' EXIT
DAEMON=$top/docs/pgwardd.8
CONF=$top/docs/pgward.json.5
CTLMAN=$top/docs/pgwardctl.8
PAGES=("$DAEMON" "$CONF" "$CTLMAN")

# The drift checker: python3 $W/drift.py COMMAND ...; prints one line per problem, each naming
# the key or option, and exits 1 when there is any.
cat >"$W/drift.py" <<'PY'
import json, os, re, subprocess, sys

# Each object of the configuration: the function of user/config*.c whose key table (the
# array given to pw_jp_check_keys) lists its keys, and the object's path as pgward.json.5
# heads its section. A key table in a function not named here fails the check.
FUNC_PATH = {
    ("config.c", "parse_root"): "",
    ("config.c", "parse_listen_one"): "listen[]",
    ("config.c", "parse_tls"): "tls",
    ("config.c", "parse_limits"): "limits",
    ("config.c", "parse_jwt"): "jwt",
    ("config_upstream.c", "parse_upstream"): "upstreams.NAME",
    ("config_policy.c", "parse_identity"): "identities[]",
    ("config_policy.c", "parse_match"): "identities[].match",
    ("config_policy.c", "policy_role"): "identities[].jit_role",
    ("config_policy.c", "parse_grant"): "identities[].jit_role.grants[]",
    ("config_policy.c", "parse_window"): "identities[].windows[]",
    ("config_policy.c", "policy_guardrails"): "identities[].guardrails",
    ("config_policy.c", "parse_rule"): "identities[].rules[]",
    ("config_control.c", "pw_cfg_identity_approvals"): "identities[].approvals",
    ("config_control.c", "parse_control"): "control",
    ("config_control.c", "parse_metrics"): "metrics",
    ("config_control.c", "parse_approvals"): "approvals",
    ("config_control.c", "parse_approval_db"): "approvals.database",
    ("config_redirect.c", "pw_cfg_parse_redirect"): "redirect",
    ("config_redirect.c", "parse_nets"): "redirect.deny[]",
    ("config_audit.c", "pw_cfg_parse_audit"): "audit",
    ("config_audit.c", "checkpoint"): "audit.checkpoint",
    ("config_audit.c", "syslog_section"): "audit.syslog",
    ("config_record.c", "pw_cfg_parse_recording"): "recording",
}
STRING = r'"(?:\\.|[^"\\\n])*"'


def shown(path):
    return "$" if path == "" else "$." + path


def blank(text):
    """Comments blanked; a copy with string contents blanked too (same offsets)."""
    code, plain = [], []
    for m in re.finditer(STRING + r"|/\*.*?\*/|//[^\n]*|'(?:\\.|[^'\\])'|.", text, re.S):
        t = m.group(0)
        if t.startswith("/*") or t.startswith("//"):
            b = re.sub(r"[^\n]", " ", t)
            code.append(b)
            plain.append(b)
        elif t.startswith('"') or t.startswith("'"):
            code.append(t)
            plain.append(t[0] + " " * (len(t) - 2) + t[-1])
        else:
            code.append(t)
            plain.append(t)
    return "".join(code), "".join(plain)


def functions(code, plain):
    """name -> (start, end) of each top-level function body."""
    out = {}
    for m in re.finditer(r"^[A-Za-z_][\w \t\*]*?\b(\w+)\s*\([^;{}]*\)\s*\{", plain, re.M):
        depth, i = 0, m.end() - 1
        while i < len(plain):
            if plain[i] == "{":
                depth += 1
            elif plain[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        out[m.group(1)] = (m.end() - 1, i + 1)
    return out


def strings(s):
    return [json.loads(x) for x in re.findall(STRING, s)]


def array(code, name, start=0, end=None):
    """The strings of `static const char *const NAME[...] = {...};` within code[start:end]."""
    m = re.compile(r"\bconst\s+char\s*\*\s*const\s+" + name + r"\s*\[[^\]]*\]\s*=\s*\{(.*?)\};",
                   re.S).search(code, start, len(code) if end is None else end)
    return None if m is None else strings(m.group(1))


def source_keys(src):
    """{path: (keys, where)} from the parsers' key tables, and the problems met."""
    tables, problems, seen = {}, [], set()
    texts = {}
    for f in sorted(os.listdir(src)):
        if re.fullmatch(r"config\w*\.c", f):
            with open(os.path.join(src, f)) as fh:
                texts[f] = blank(fh.read())
    for f, (code, plain) in texts.items():
        funcs = functions(code, plain)
        for fn, (a, b) in funcs.items():
            for call in re.finditer(r"\bpw_jp_check_keys\s*\(", plain[a:b]):
                # the fourth argument: the key table
                i, depth, args, cur = a + call.end(), 1, [], ""
                while depth:
                    c = plain[i]
                    depth += c in "([{"
                    depth -= c in ")]}"
                    if (c == "," and depth == 1) or depth == 0:
                        args.append(cur.strip())
                        cur = ""
                    else:
                        cur += code[i]
                    i += 1
                where = "user/%s: %s()" % (f, fn)
                if (f, fn) not in FUNC_PATH:
                    problems.append("%s checks keys with a table man.sh does not know: map "
                                    "the function to its object's path in FUNC_PATH" % where)
                    continue
                seen.add((f, fn))
                name = args[3] if len(args) == 4 else "?"
                keys = array(code, re.escape(name), a, b)
                if keys is None and fn == "parse_match":
                    # built from the match_globs table (M("key", ...)) and literals
                    keys = [json.loads(x) for x in re.findall(r"\bM\((%s)" % STRING, code)]
                    keys += strings("".join(re.findall(
                        name + r"\s*\[[^\]]*\]\s*=\s*(" + STRING + ")", code[a:b])))
                elif keys is None and fn == "policy_guardrails":
                    # "all" and every name of pw_guardrail_name()'s table
                    ga, gb = funcs.get("pw_guardrail_name", (0, 0))
                    keys = strings("".join(re.findall(r"=\s*(" + STRING + ")", code[ga:gb])))
                    keys += strings("".join(re.findall(
                        name + r"\s*\[[^\]]*\]\s*=\s*(" + STRING + ")", code[a:b])))
                if not keys:
                    problems.append("%s: cannot read the key table %s" % (where, name))
                    continue
                path = FUNC_PATH[(f, fn)]
                old = tables.get(path, (set(), where))
                tables[path] = (old[0] | set(keys), old[1])
    for (f, fn), path in FUNC_PATH.items():
        if (f, fn) not in seen:
            problems.append("user/%s: %s() (%s) has no pw_jp_check_keys call any more: "
                            "update FUNC_PATH in man.sh" % (f, fn, shown(path)))
    # the mask rule keys are a part of a rule's table
    mask = array(texts["config_mask.c"][0], "mask_keys") if "config_mask.c" in texts else None
    rule = tables.get("identities[].rules[]", (set(), ""))[0]
    if mask is None:
        problems.append("user/config_mask.c: no mask_keys table")
    for k in sorted(set(mask or ()) - rule):
        problems.append("user/config_mask.c: mask key %s is not in a rule's key table" % k)
    return tables, problems


FONT = re.compile(r"\\f[BIRP]|\\f\(\w\w")


def roff_text(s):
    s = FONT.sub("", s).replace("\\-", "-").replace("\\&", "")
    return s.strip().strip('"')


def sections(page):
    """{SH name: [lines]}"""
    out, cur = {}, None
    with open(page) as fh:
        for line in fh.read().split("\n"):
            if line.startswith(".SH"):
                cur = roff_text(line[3:])
                out[cur] = []
            elif cur is not None:
                out[cur].append(line)
    return out


PATH_RE = re.compile(r"[a-z_]+(\[\]|\.NAME|\.[a-z_]+)*")


def man_keys(page):
    """{path: {key: tag}} from the KEYS section, and the problems met."""
    keys, problems, path = {}, [], None
    lines = sections(page).get("KEYS")
    if lines is None:
        return {}, ["%s has no KEYS section" % os.path.basename(page)]
    for i, line in enumerate(lines):
        if line.startswith(".SS"):
            head = roff_text(line[3:])
            path = "" if head == "Top level" else head
            if path and not PATH_RE.fullmatch(path):
                problems.append("KEYS: heading %r is not an object's path" % head)
            if path in keys:
                problems.append("KEYS: %s has two sections" % shown(path))
            keys.setdefault(path, {})
        elif line.startswith(".TP") and path is not None:
            tag = lines[i + 1] if i + 1 < len(lines) else ""
            m = re.match(r"\\fB([a-z0-9_]+)\\f[RP]", tag)
            if not m:
                problems.append("KEYS %s: a .TP entry without a key: %r" % (shown(path), tag))
                continue
            k = m.group(1)
            if k in keys[path]:
                problems.append("KEYS: %s.%s is documented twice" % (shown(path), k))
            if not re.search(r"\\\(em .*(default|required)", tag):
                problems.append("KEYS: %s.%s: its tag line says no type and default "
                                "(KEY \\(em TYPE; default: ...)" % (shown(path), k))
            keys[path][k] = tag
    return keys, problems


def cmd_keys(src, page):
    tables, problems = source_keys(src)
    doc, p2 = man_keys(page)
    problems += p2
    name = os.path.basename(page)
    for path in sorted(set(tables) | set(doc)):
        have, where = tables.get(path, (set(), None))
        got = set(doc.get(path, {}))
        if where is None:
            problems.append("%s documents the object %s, which no parser reads" % (name, shown(path)))
            continue
        if path not in doc:
            problems.append("%s has no section for the object %s (%s)" % (name, shown(path), where))
        for k in sorted(have - got):
            problems.append("%s does not document %s.%s (accepted by %s)"
                            % (name, shown(path), k, where))
        for k in sorted(got - have):
            problems.append("%s documents %s.%s, which no parser accepts (%s takes %s)"
                            % (name, shown(path), k, where, ", ".join(sorted(have))))
    return problems


def probe(path):
    """A configuration with the unknown key zz_probe in the object at path."""
    v = {"zz_probe": 1}
    parts = [] if path == "" else path.split(".")
    for part in reversed(parts):
        if part == "NAME":
            v = {"u": v}
            continue
        if part.endswith("[]"):
            v = [v]
            part = part[:-2]
        v = {part: v}
    return v


def cmd_parser(src, ctl, work):
    """The key tables are what the built parser enforces."""
    tables, problems = source_keys(src)
    for path, (keys, where) in sorted(tables.items()):
        f = os.path.join(work, "probe.json")
        with open(f, "w") as fh:
            json.dump(probe(path), fh)
        r = subprocess.run([ctl, "-j", "config", "check", f], capture_output=True, text=True)
        try:
            errors = json.loads(r.stdout)["errors"]
        except (ValueError, KeyError):
            problems.append("%s: pgwardctl config check printed no JSON: %s"
                            % (shown(path), (r.stdout + r.stderr)[:300]))
            continue
        found = [e["message"] for e in errors
                 if (e.get("path") or "").endswith(".zz_probe") or e.get("path") == "$.zz_probe"]
        m = re.fullmatch(r"unknown key \(expected one of (.*)\)", found[0]) if len(found) == 1 else None
        if not m:
            problems.append("%s: the parser did not refuse zz_probe once as an unknown key: %s"
                            % (shown(path), found or [e["message"] for e in errors][:3]))
            continue
        parsed = set(m.group(1).split(", "))
        for k in sorted(parsed - keys):
            problems.append("%s: the parser accepts %s, not in the key table man.sh read (%s)"
                            % (shown(path), k, where))
        for k in sorted(keys - parsed):
            problems.append("%s: the key table man.sh read (%s) has %s, the parser refuses it"
                            % (shown(path), where, k))
    return problems


OPT_TAG = re.compile(r"\\fB\\-(\w)\\fR, \\fB\\-\\-([a-z](?:[a-z]|\\-)*)\\fR")


def cmd_options(usage_file, source, page):
    problems = []
    with open(usage_file) as fh:
        usage = fh.read()
    with open(source) as fh:
        code = fh.read()
    accepted = {n: chr(int(c)) if c.isdigit() else c for n, c in re.findall(
        r'\{"([a-z][a-z-]*)",\s*\w+,\s*NULL,\s*\'(\w)\'\}', code)}
    if not accepted:
        return ["user/pgwardd.c: no getopt_long option table found"]
    printed = set(re.findall(r"(?<![\w-])--([a-z][a-z-]*)", usage))
    pairs = dict((l, s) for s, l in re.findall(r"(?m)^\s+-(\w), --([a-z][a-z-]*)", usage))
    lines = sections(page).get("OPTIONS")
    if lines is None:
        return ["pgwardd.8 has no OPTIONS section"]
    doc = {}
    for i, line in enumerate(lines):
        if line.startswith(".TP") and i + 1 < len(lines):
            m = OPT_TAG.match(lines[i + 1])
            if not m:
                problems.append("pgwardd.8 OPTIONS: an entry that is not -X, --NAME: %r" % lines[i + 1])
                continue
            doc[m.group(2).replace("\\-", "-")] = m.group(1)
    with open(page) as fh:
        mentioned = {n.replace("\\-", "-")
                     for n in re.findall(r"\\-\\-([a-z](?:[a-z]|\\-)*[a-z])", fh.read())}
    for n in sorted(printed - set(doc)):
        problems.append("pgwardd --help prints --%s, pgwardd.8 OPTIONS has no entry for it" % n)
    for n in sorted(set(doc) - printed):
        problems.append("pgwardd.8 documents --%s, pgwardd --help does not print it" % n)
    for n in sorted(set(accepted) - set(doc)):
        problems.append("pgwardd accepts --%s (user/pgwardd.c), pgwardd.8 OPTIONS lacks it" % n)
    for n in sorted(set(doc) - set(accepted)):
        problems.append("pgwardd.8 documents --%s, which pgwardd does not accept" % n)
    for n in sorted(mentioned - set(accepted)):
        problems.append("pgwardd.8 mentions --%s, which pgwardd does not accept" % n)
    for n, s in sorted(doc.items()):
        if n in accepted and accepted[n] != s:
            problems.append("pgwardd.8 says -%s for --%s, pgwardd takes -%s" % (s, n, accepted[n]))
        if n in pairs and pairs[n] != s:
            problems.append("pgwardd.8 says -%s for --%s, its usage -%s" % (s, n, pairs[n]))
    return problems


def cmd_refs(docs, *pages):
    problems = []
    for page in pages:
        name = os.path.basename(page)
        with open(page) as fh:
            text = fh.read()
        refs = set(re.findall(r"\\fB([\w.-]+)\\f[RP]\((\d)\)", text))
        if not re.search(r"(?m)^\.SH \"?SEE ALSO", text):
            problems.append("%s has no SEE ALSO" % name)
        for n, s in sorted(refs):
            if n.startswith("pgward"):
                if not os.path.isfile(os.path.join(docs, "%s.%s" % (n, s))):
                    problems.append("%s refers to %s(%s): there is no docs/%s.%s" % (name, n, s, n, s))
            elif subprocess.run(["man", "-w", s, n], capture_output=True).returncode != 0:
                problems.append("%s refers to %s(%s): no such page installed (man -w)" % (name, n, s))
        for d in sorted(set(re.findall(r"docs/[\w.-]+\.md", text))):
            if not os.path.isfile(os.path.join(os.path.dirname(docs), d)):
                problems.append("%s names %s, which does not exist" % (name, d))
    return problems


def cmd_example(page, out):
    """The EXAMPLES section's JSON, as written (roff escapes undone)."""
    lines = sections(page).get("EXAMPLES", [])
    body = [l for l in lines if not l.startswith(".")]
    start = next(i for i, l in enumerate(body) if l.strip() == "{")
    text = "\n".join(l.replace("\\-", "-") for l in body[start:])
    with open(out, "w") as fh:
        fh.write(text)
    json.loads(text)
    return []


if __name__ == "__main__":
    probs = globals()["cmd_" + sys.argv[1]](*sys.argv[2:])
    for p in probs:
        print(p, file=sys.stderr)
    sys.exit(1 if probs else 0)
PY

# --- rendering ------------------------------------------------------------------------------
for page in "${PAGES[@]}"; do
	n=${page##*/}
	check "$n: groff -man -ww finds nothing to warn of" bash -c '
		w=$(groff -man -ww -z "$1" 2>&1)
		[[ -z $w ]] || { echo "$w"; exit 1; }' _ "$page"
	check "$n: man --warnings renders it without a warning" bash -c '
		w=$(MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null)
		[[ -z $w ]] || { echo "$w"; exit 1; }' _ "$page"
	# (the pages carry no date on purpose, as gen-ctl-docs.sh makes pgwardctl.8: the version
	# dates them and a build is reproducible; mandoc's warning about it is the one let pass)
	if command -v mandoc >/dev/null; then
		check "$n: mandoc -T lint finds no warning" bash -c '
			w=$(mandoc -T lint -W warning "$1" 2>&1 | grep -v "WARNING: missing date, using \"\": TH")
			[[ -z $w ]] || { echo "$w"; exit 1; }' _ "$page"
	fi
done
command -v mandoc >/dev/null || echo "# mandoc is not installed: the pages were not linted by it"

# --- the sections each page has ----------------------------------------------------------------
MANWIDTH=200 man -l "$DAEMON" >"$W/pgwardd.txt" 2>/dev/null
MANWIDTH=200 man -l "$CONF" >"$W/conf.txt" 2>/dev/null
check "pgwardd.8 has every section" python3 -c '
import sys
text = open(sys.argv[1]).read()
for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "THE EBPF REDIRECT",
          "EXIT STATUS", "ENVIRONMENT", "FILES", "SECURITY", "EXAMPLES", "SEE ALSO"):
    assert "\n" + s + "\n" in text, "no section " + s
' "$W/pgwardd.txt"
check "pgwardd.8: FILES names every installed path, SIGNALS every signal" python3 -c '
import sys
text = open(sys.argv[1]).read()
files = text.split("\nFILES\n")[1].split("\nSECURITY\n")[0]
for p in ("/etc/pgward/pgward.json", "/etc/pgward/*.pw", "/var/lib/pgward",
          "/var/log/pgward/audit.jsonl", "/run/pgward/control.sock", "/sys/fs/bpf/pgward",
          "pgwardd.service"):
    assert p in files, "FILES does not name " + p
sig = text.split("\nSIGNALS\n")[1].split("\nTHE EBPF REDIRECT\n")[0]
for s in ("SIGHUP", "SIGTERM", "SIGINT", "shutdown_grace_seconds", "second SIGTERM"):
    assert s in sig, "SIGNALS does not name " + s
for s in ("CAP_BPF", "CAP_NET_ADMIN", "CAP_PERFMON", "CAP_SYS_ADMIN"):
    assert s in text.split("\nSECURITY\n")[1], "SECURITY does not name " + s
' "$W/pgwardd.txt"
# every variable pgwardd's code reads (getenv outside pgwardctl's files) is in ENVIRONMENT
check "pgwardd.8 ENVIRONMENT names every variable pgwardd reads" python3 -c '
import glob, os, re, sys
text = open(sys.argv[1]).read()
env = text.split("\nENVIRONMENT\n")[1].split("\nFILES\n")[0]
names = set()
for f in glob.glob(os.path.join(sys.argv[2], "*.c")):
    b = os.path.basename(f)
    if b != "pgwardctl.c" and not b.startswith("ctl_"):
        names |= set(re.findall(r"getenv\(\s*\"(\w+)\"", open(f).read()))
for n in sorted(names):
    assert n in env, "pgwardd reads %s, ENVIRONMENT does not name it" % n
assert names or "reads no environment variable" in env, "ENVIRONMENT names variables pgwardd does not read"
roff = open(sys.argv[3]).read().split("\n.SH ENVIRONMENT\n")[1].split("\n.SH ")[0]
for n in re.findall(r"(?m)^\.TP\n\.B (\w+)$", roff):
    assert n in names, "ENVIRONMENT names %s, which pgwardd does not read" % n
' "$W/pgwardd.txt" "$top/user" "$DAEMON"
# the defaults the pages give for installed paths are the parsers' own
check "pgwardd.8's default paths are the parsers' defaults" bash -c '
	grep -q "\"/run/pgward/control.sock\"" "$1/user/config_control.c" &&
	grep -q "\"/sys/fs/bpf/pgward\"" "$1/user/config_redirect.c" &&
	grep -q "\"/sys/fs/bpf/pgward\"" "$1/user/pgwardd.c" &&
	grep -q "\"/var/lib/pgward/cgroup-overrides.json\"" "$1/user/config_redirect.c"' _ "$top"
check "pgward.json.5 has every section" python3 -c '
import sys
text = open(sys.argv[1]).read()
for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "KEYS", "POLICY", "MASKING", "EXAMPLES",
          "FILES", "SEE ALSO"):
    assert "\n" + s + "\n" in text, "no section " + s
' "$W/conf.txt"

# --- pgwardd's options -------------------------------------------------------------------------
"$BUILD/pgwardd" --help >"$W/usage.txt" 2>&1
check "pgwardd --help prints its usage" grep -q -- "--config" "$W/usage.txt"
check "pgwardd.8 OPTIONS: every option pgwardd accepts and prints, none else" \
	python3 "$W/drift.py" options "$W/usage.txt" "$top/user/pgwardd.c" "$DAEMON"

# --- configuration keys ------------------------------------------------------------------------
check "pgward.json.5 KEYS: every key of every object the parsers accept, none else" \
	python3 "$W/drift.py" keys "$top/user" "$CONF"
mkdir -p "$W/probe"
check "the key tables read from user/config*.c are what pgwardctl config check enforces" \
	python3 "$W/drift.py" parser "$top/user" "$BUILD/pgwardctl" "$W/probe"

# --- the checker can fail, and says what is wrong ---------------------------------------------
# expect_drift NAME WANTED CMD...: CMD fails and prints WANTED
expect_drift() {
	local name=$1 want=$2
	shift 2
	check "$name" bash -c 'out=$("${@:2}" 2>&1) && { echo "passed: $out"; exit 1; }
		grep -qF -- "$1" <<<"$out" || { echo "wanted \"$1\", got: $out"; exit 1; }' _ "$want" "$@"
}
# a key entry taken out of the page, one put in
python3 - "$CONF" "$W/less.5" "$W/more.5" <<'PY'
import sys
s = open(sys.argv[1]).read()
tp = "\n.TP\n\\fBpool_max_idle\\fR"
i = s.index(tp)
open(sys.argv[2], "w").write(s[:i] + s[s.index("\n.TP", i + 1):])
open(sys.argv[3], "w").write(s.replace(tp, "\n.TP\n\\fBpool_max_idel\\fR \\(em integer; default: 1\nA typo." + tp, 1))
PY
expect_drift "checker: a key the page lacks fails, naming it" \
	'does not document $.upstreams.NAME.pool_max_idle' \
	python3 "$W/drift.py" keys "$top/user" "$W/less.5"
expect_drift "checker: a key no parser accepts fails, naming it" \
	'documents $.upstreams.NAME.pool_max_idel, which no parser accepts' \
	python3 "$W/drift.py" keys "$top/user" "$W/more.5"
# a key added to a parser's table, and a new object's table in a function not mapped
mkdir -p "$W/src"
cp "$top"/user/config*.c "$W/src/"
sed -i 's/"dir", "max_bytes", NULL/"dir", "max_bytes", "compress", NULL/' "$W/src/config_record.c"
cat >>"$W/src/config_record.c" <<'C'
static int parse_new_section(struct pw_jp *x, const json_t *o)
{
	static const char *const keys[] = {"speed", NULL};
	return pw_jp_check_keys(x, o, "$.new", keys);
}
C
expect_drift "checker: a key added to a parser's table fails, naming it" \
	'does not document $.recording.compress (accepted by user/config_record.c: pw_cfg_parse_recording())' \
	python3 "$W/drift.py" keys "$W/src" "$CONF"
expect_drift "checker: a key table in a function it does not know fails, naming it" \
	'user/config_record.c: parse_new_section() checks keys with a table man.sh does not know' \
	python3 "$W/drift.py" keys "$W/src" "$CONF"
expect_drift "checker: a key table entry the built parser does not accept fails, naming it" \
	'the key table man.sh read (user/config_record.c: pw_cfg_parse_recording()) has compress, the parser refuses it' \
	python3 "$W/drift.py" parser "$W/src" "$BUILD/pgwardctl" "$W/probe"
# an option taken out of the page, an option the program does not have put in
python3 - "$DAEMON" "$W/less.8" "$W/more.8" <<'PY'
import sys
s = open(sys.argv[1]).read()
tp = "\n.TP\n\\fB\\-t\\fR, \\fB\\-\\-check\\fR"
i = s.index(tp)
open(sys.argv[2], "w").write(s[:i] + s[s.index("\n.TP", i + 1):])
open(sys.argv[3], "w").write(s.replace(tp, "\n.TP\n\\fB\\-f\\fR, \\fB\\-\\-foreground\\fR\nStay.", 1) + "")
PY
expect_drift "checker: an option the page lacks fails, naming it" \
	'pgwardd --help prints --check, pgwardd.8 OPTIONS has no entry for it' \
	python3 "$W/drift.py" options "$W/usage.txt" "$top/user/pgwardd.c" "$W/less.8"
expect_drift "checker: an option pgwardd does not have fails, naming it" \
	'pgwardd.8 documents --foreground, which pgwardd does not accept' \
	python3 "$W/drift.py" options "$W/usage.txt" "$top/user/pgwardd.c" "$W/more.8"
sed 's/bpftool\\fR(8)/bpftool\\fR(8), \\fBpgward-nothere\\fR(7)/' "$DAEMON" >"$W/refs.8"
expect_drift "checker: a reference to a page we do not ship fails, naming it" \
	'refers to pgward-nothere(7): there is no docs/pgward-nothere.7' \
	python3 "$W/drift.py" refs "$top/docs" "$W/refs.8"

# --- the page's example configuration ----------------------------------------------------------
check "pgward.json.5's example is JSON" python3 "$W/drift.py" example "$CONF" "$W/example.json"
install -m 600 /dev/null "$W/upstream.pw" && echo 'placeholder' >"$W/upstream.pw"
mkdir -p "$W/log"
sed -e "s|/etc/pgward/upstream.pw|$W/upstream.pw|" -e "s|/var/log/pgward/|$W/log/|" \
	-e 's|"pgward"|"root"|g' "$W/example.json" >"$W/example-local.json"
check "pgward.json.5's example passes pgwardctl config check (local paths, group root)" \
	"$BUILD/pgwardctl" config check "$W/example-local.json"

# --- cross references ----------------------------------------------------------------------------
check "every NAME(N) of the three pages resolves (ours to docs/, others installed); every docs/*.md named exists" \
	python3 "$W/drift.py" refs "$top/docs" "${PAGES[@]}"

finish
