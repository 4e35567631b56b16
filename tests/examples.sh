#!/usr/bin/env bash
# Every example configuration a user may copy is one pgwardd accepts, and the documentation
# stands alone:
# - each examples/*.json and each ```json block of README.md, docs/configuration.md and
#   docs/policy.md is checked with `$BUILD/pgwardctl config check` (and `policy check`, which
#   reads the rules the same way pgwardd does);
# - README.md and docs/*.md have no http:// or https:// link (outside code), and every
#   relative link of theirs points to a file that exists (and, with an #anchor, to a heading
#   of that file).
#
# ```json blocks: a block that is a whole JSON object is a configuration; a block that starts
# with `"rules":` is a rules fragment, checked inside the identity of examples/minimal.json.
# Any other block fails this test (make it one of those two kinds, write it in a plain ```
# block, or teach this script).
# Files the examples name under /etc/pgward/ (TLS certificate, key and CA, password files,
# the masking key, a JWKS) are made as throwaway files in a temporary directory, and the
# configuration is pointed there; nothing else is changed in it. Nothing is skipped
# silently: a check that cannot run here is printed as "ok - ... # SKIP reason".
# shellcheck source-path=SCRIPTDIR disable=SC2016 # bash -c scripts take their arguments as $1...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export BUILD=${BUILD:-build}
# shellcheck source=tests/integration/lib.sh
source tests/integration/lib.sh

CTL=$BUILD/pgwardctl
if [[ ! -x $CTL ]]; then
	echo "not ok - $CTL is missing (run make)"
	echo "1..1"
	exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/pw_examples.XXXXXX")
trap 'rm -rf "$T"' EXIT

# The documents whose ```json blocks are configurations pgwardd must accept.
DOCS=(README.md docs/configuration.md docs/policy.md)

# Throwaway stand-ins for the files the examples name under /etc/pgward/; jwks.json holds the
# public half of the throwaway TLS key as an RS256 signing key.
make_files() {
	mkdir -p "$T/etc/pgward" &&
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
			-keyout "$T/etc/pgward/server.key" -out "$T/etc/pgward/server.crt" 2>/dev/null &&
		cp "$T/etc/pgward/server.crt" "$T/etc/pgward/db-ca.crt" &&
		(umask 077 && printf 'throwaway\n' >"$T/etc/pgward/app.pw" &&
			head -c 32 /dev/urandom >"$T/etc/pgward/mask.key") &&
		/usr/bin/python3 - "$T/etc/pgward/server.key" "$T/etc/pgward/jwks.json" <<-'PY'
			import base64, json, subprocess, sys
			out = subprocess.run(["openssl", "rsa", "-in", sys.argv[1], "-noout", "-modulus"],
			                     capture_output=True, text=True, check=True).stdout
			n = bytes.fromhex(out.strip().split("=", 1)[1])
			b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
			key = {"kty": "RSA", "kid": "throwaway", "alg": "RS256", "use": "sig",
			       "n": b64(n), "e": b64((65537).to_bytes(3, "big"))}
			json.dump({"keys": [key]}, open(sys.argv[2], "w"))
		PY
}
check "throwaway TLS certificate, key, CA, password file, masking key and JWKS made in a temporary directory" make_files

# localise FILE OUT: the configuration with /etc/pgward/ pointed at the throwaway files; any
# other file a configuration names must then exist here, or its check fails and says which
localise() { sed "s#/etc/pgward/#$T/etc/pgward/#g" "$1" >"$2"; }

config_ok() { # FILE: both checks pass
	"$CTL" config check "$1" >&2 && "$CTL" policy check "$1" >&2
}

n=0
shopt -s nullglob
examples=(examples/*.json)
shopt -u nullglob
check "examples/ holds example configurations (${#examples[@]})" test "${#examples[@]}" -gt 0
for f in "${examples[@]}"; do
	localise "$f" "$T/ex-$((++n)).json"
	check "$f: pgwardctl config check and policy check accept it" config_ok "$T/ex-$n.json"
done

# A rules fragment inside the identity of examples/minimal.json.
wrap_rules() { # FRAGMENT OUT
	/usr/bin/python3 - "$1" "$2" examples/minimal.json <<-'PY'
		import json, sys
		frag, out, base = sys.argv[1:]
		rules = json.loads("{" + open(frag).read() + "}")["rules"]
		conf = json.load(open(base))
		conf["identities"][0]["rules"] = rules
		json.dump(conf, open(out, "w"), indent=2)
	PY
}

# names_missing FILE: FILE names a file under /etc/pgward/ that this host does not have
names_missing() {
	local p
	while IFS= read -r p; do
		[[ -e $p ]] || return 0
	done < <(grep -o '/etc/pgward/[A-Za-z0-9._-]*' "$1" | sort -u)
	return 1
}

# refused_naming FILE: config check of FILE as written fails, naming a missing /etc/pgward/ file
refused_naming() {
	local out
	if out=$("$CTL" config check "$1" 2>&1); then
		echo "accepted although it names files this host does not have" >&2
		return 1
	fi
	grep -q '/etc/pgward/' <<<"$out" || {
		printf 'refused without naming the missing file:\n%s\n' "$out" >&2
		return 1
	}
}

# The ```json blocks of each document, one file each, with the line they start on.
for doc in "${DOCS[@]}"; do
	if [[ ! -f $doc ]]; then
		check "$doc exists" false
		continue
	fi
	d=$T/blocks/${doc//\//_}
	mkdir -p "$d"
	awk -v dir="$d" '
		/^```json[ \t]*$/ { n++; inblock = 1; f = sprintf("%s/%02d.json", dir, n); printf "" > f
			print NR > (f ".line"); close(f ".line"); next }
		/^```/ && inblock { inblock = 0; close(f); next }
		inblock { print >> f }
	' "$doc"
	shopt -s nullglob
	blocks=("$d"/*.json)
	shopt -u nullglob
	check "$doc has \`\`\`json blocks (${#blocks[@]})" test "${#blocks[@]}" -gt 0

	for b in "${blocks[@]}"; do
		line=$(cat "$b.line")
		first=$(grep -m1 -v '^[[:space:]]*$' "$b")
		case $first in
		'{'*)
			localise "$b" "$b.local"
			check "$doc line $line: a whole configuration; config check and policy check accept it" \
				config_ok "$b.local"
			# as a user copies it: refused until the files it names exist, and the error says which
			if names_missing "$b"; then
				check "$doc line $line: as written, config check refuses it and names a file of /etc/pgward/ this host lacks" \
					refused_naming "$b"
			fi
			;;
		'"rules":'*)
			if wrap_rules "$b" "$b.wrapped" 2>"$b.err"; then
				localise "$b.wrapped" "$b.local"
				check "$doc line $line: a rules fragment; accepted inside the identity of examples/minimal.json" \
					config_ok "$b.local"
			else
				check "$doc line $line: a rules fragment that reads as JSON" bash -c 'cat "$1" >&2; false' _ "$b.err"
			fi
			;;
		*)
			check "$doc line $line: a json block that is a configuration or a rules fragment" \
				bash -c 'echo "starts with: $1 (neither {...} nor \"rules\": ...)" >&2; false' _ "$first"
			;;
		esac
	done
done

# The documents say that their configurations need the files they name before config check
# passes.
check "docs/configuration.md says the complete example needs its files before config check passes" \
	bash -c 'tr "\n" " " <docs/configuration.md | grep -q "config check[^.]*until"'
check "README.md says its recipes need the files they name under /etc/pgward/" \
	bash -c 'tr "\n" " " <README.md | grep -q "once the files it names under \`/etc/pgward/\` exist"'

# Links: README.md and docs/*.md stand alone. Outside code (fenced blocks and code spans),
# no http:// or https:// at all (a link, an autolink or a bare address); every link target is
# relative (no scheme), its file exists, and its #anchor, if any, is a heading of that file
# (GitHub's anchors: lower case, punctuation dropped, spaces as hyphens, -1, -2 for repeats).
cat >"$T/links.py" <<'PY'
import os, re, sys

def outside_fences(text):
    """Each line of text, or None for a line of a fenced block (its fences included)."""
    fence = None
    for line in text.split("\n"):
        m = re.match(r"^\s{0,3}(`{3,}|~{3,})", line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            yield None
        elif m:
            fence = m.group(1)
            yield None
        else:
            yield line

def strip_code(text):
    """The text with fenced blocks and code spans blanked, newlines kept (line numbers hold)."""
    text = "\n".join("" if line is None else line for line in outside_fences(text))
    span = re.compile(r"(`+)(?:(?!\n[ \t]*\n)[\s\S])*?(?<!`)\1(?!`)")
    return span.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)

def raw_headings(path):
    """Headings read from the raw text (code spans kept as their content), outside fences."""
    out = []
    for line in outside_fences(open(path, encoding="utf-8").read()):
        if line is None:
            continue
        h = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if h:
            out.append(h.group(1))
    seen, result = {}, set()
    for h in out:
        slug = re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-")
        k = seen.get(slug, 0)
        seen[slug] = k + 1
        result.add(slug if k == 0 else "%s-%d" % (slug, k))
    return result

def lineno(text, pos):
    return text.count("\n", 0, pos) + 1

def check_external(path):
    text = strip_code(open(path, encoding="utf-8").read())
    bad = [(lineno(text, m.start()), m.group(0)) for m in re.finditer(r"(?i)https?://\S*", text)]
    for n, u in bad:
        print("%s:%d: a link outside the repository: %s" % (path, n, u), file=sys.stderr)
    return not bad

def targets(text):
    for m in re.finditer(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+[\"'(][^)]*)?\)", text):
        yield m.start(), m.group(1)
    for m in re.finditer(r"(?m)^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", text):
        yield m.start(), m.group(1)
    for m in re.finditer(r"(?i)<a\s[^>]*href=[\"']([^\"']*)[\"']", text):
        yield m.start(), m.group(1)

def check_relative(path):
    text = strip_code(open(path, encoding="utf-8").read())
    ok, n = True, 0
    base = os.path.dirname(path)
    for pos, t in targets(text):
        n += 1
        where = "%s:%d" % (path, lineno(text, pos))
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", t) or t.startswith("//"):
            print("%s: %s is not a relative link" % (where, t), file=sys.stderr)
            ok = False
            continue
        f, _, frag = t.partition("#")
        if f.startswith("/"):
            print("%s: %s is absolute: link relative to the page" % (where, t), file=sys.stderr)
            ok = False
            continue
        target = os.path.normpath(os.path.join(base, f)) if f else path
        if not os.path.exists(target):
            print("%s: %s: no such file (%s)" % (where, t, target), file=sys.stderr)
            ok = False
            continue
        if frag and target.endswith(".md") and frag not in raw_headings(target):
            print("%s: %s: %s has no heading with the anchor #%s" % (where, t, target, frag),
                  file=sys.stderr)
            ok = False
    return ok

mode, path = sys.argv[1], sys.argv[2]
sys.exit(0 if (check_external if mode == "external" else check_relative)(path) else 1)
PY

links() { /usr/bin/python3 "$T/links.py" "$@"; }

# The checker itself can fail: a throwaway page with an address, a broken relative link and a
# link to a missing anchor is refused on each count (and an address in code is not a link).
mkdir -p "$T/page/docs"
printf '# Top\n\nSee [x](https://example.org/) and `https://in.code/`.\n' >"$T/page/a.md"
printf '# Top\n\n```\nhttps://in.a.fence/\n```\nSee [b](docs/missing.md) and [c](a.md#nowhere).\n' >"$T/page/b.md"
printf '# Top\n\n## `redirect`: transparent (eBPF)\n\n[ok](#redirect-transparent-ebpf) `https://x/`\n' >"$T/page/c.md"
check "the link check refuses an https link outside code" bash -c '! "$@" external "$0/a.md"' "$T/page" /usr/bin/python3 "$T/links.py"
check "the link check refuses a missing file and a missing anchor, and takes a right anchor and addresses in code" \
	bash -c '! "$@" relative "$0/b.md" && "$@" external "$0/b.md" && "$@" relative "$0/c.md" && "$@" external "$0/c.md"' \
	"$T/page" /usr/bin/python3 "$T/links.py"

shopt -s nullglob
pages=(README.md docs/*.md)
shopt -u nullglob
for p in "${pages[@]}"; do
	check "$p: no http:// or https:// link (it stands alone)" links external "$p"
	check "$p: every relative link points to a file (and heading) that exists" links relative "$p"
done

finish
