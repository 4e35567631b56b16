#!/usr/bin/env bash
# Every example configuration a user may copy is one pgwardd accepts: each examples/*.json
# and each ```json block of README.md, checked with `$BUILD/pgwardctl config check` (and
# `policy check`, which reads the rules the same way pgwardd does).
#
# README blocks: a block that is a whole JSON object is a configuration; a block that starts
# with `"rules":` is a rules fragment, checked inside the identity of examples/minimal.json.
# Any other block fails this test (make it one of those two kinds, or teach this script).
# Files the examples name under /etc/pgward/ (TLS certificate, key and CA, password files,
# the masking key)
# are made as throwaway files in a temporary directory, and the configuration is pointed
# there; nothing else is changed in it. Nothing is skipped silently: a check that cannot run
# here is printed as "ok - ... # SKIP reason".
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

# Throwaway stand-ins for the files the examples name under /etc/pgward/.
make_files() {
	mkdir -p "$T/etc/pgward" &&
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
			-keyout "$T/etc/pgward/server.key" -out "$T/etc/pgward/server.crt" 2>/dev/null &&
		cp "$T/etc/pgward/server.crt" "$T/etc/pgward/db-ca.crt" &&
		(umask 077 && printf 'throwaway\n' >"$T/etc/pgward/app.pw" &&
			head -c 32 /dev/urandom >"$T/etc/pgward/mask.key")
}
check "throwaway TLS certificate, key, CA, password file and masking key made in a temporary directory" make_files

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

# The ```json blocks of README.md, one file each, with the line they start on.
mkdir -p "$T/readme"
awk -v dir="$T/readme" '
	/^```json[ \t]*$/ { n++; inblock = 1; f = sprintf("%s/%02d.json", dir, n); printf "" > f
		print NR > (f ".line"); close(f ".line"); next }
	/^```/ && inblock { inblock = 0; close(f); next }
	inblock { print >> f }
' README.md
shopt -s nullglob
blocks=("$T"/readme/*.json)
shopt -u nullglob
check "README.md has \`\`\`json blocks (${#blocks[@]})" test "${#blocks[@]}" -gt 0

# A rules fragment inside the identity of examples/minimal.json.
wrap_rules() { # FRAGMENT OUT
	python3 - "$1" "$2" examples/minimal.json <<-'PY'
		import json, sys
		frag, out, base = sys.argv[1:]
		rules = json.loads("{" + open(frag).read() + "}")["rules"]
		conf = json.load(open(base))
		conf["identities"][0]["rules"] = rules
		json.dump(conf, open(out, "w"), indent=2)
	PY
}

for b in "${blocks[@]}"; do
	line=$(cat "$b.line")
	first=$(grep -m1 -v '^[[:space:]]*$' "$b")
	case $first in
	'{'*)
		localise "$b" "$b.local"
		check "README.md line $line: a whole configuration; config check and policy check accept it" \
			config_ok "$b.local"
		;;
	'"rules":'*)
		if wrap_rules "$b" "$b.wrapped" 2>"$b.err"; then
			localise "$b.wrapped" "$b.local"
			check "README.md line $line: a rules fragment; accepted inside the identity of examples/minimal.json" \
				config_ok "$b.local"
		else
			check "README.md line $line: a rules fragment that reads as JSON" bash -c 'cat "$1" >&2; false' _ "$b.err"
		fi
		;;
	*)
		check "README.md line $line: a json block that is a configuration or a rules fragment" \
			bash -c 'echo "starts with: $1 (neither {...} nor \"rules\": ...)" >&2; false' _ "$first"
		;;
	esac
done

# The complete example of README.md names TLS and password files it does not ship: the README
# must say so next to it, and the check must fail without them (as a user will see).
complete=""
for b in "${blocks[@]}"; do
	if grep -q '"tls"' "$b"; then
		complete=$b
		break
	fi
done
if [[ -z $complete ]]; then
	check_skip "README.md's complete example fails config check until its files exist" "no json block with a tls section"
else
	check "README.md's complete example fails config check until its TLS files exist, as the README says" \
		bash -c '! "$1" config check "$2" >/dev/null 2>&1 || [[ -r /etc/pgward/server.crt ]]' _ "$CTL" "$complete"
	check "README.md says the complete example needs its TLS files before config check passes" \
		bash -c 'tr "\n" " " <README.md | grep -q "config check[^.]*until"'
fi

finish
