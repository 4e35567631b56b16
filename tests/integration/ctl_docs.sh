#!/usr/bin/env bash
# pgwardctl's man page (docs/pgwardctl.8) and bash completion (deploy/bash-completion/
# pgwardctl) against its command tables: both regenerated from "pgwardctl __tables" by
# scripts/gen-ctl-docs.sh must equal the committed files byte for byte (run that script after
# changing a table); the page must render without a warning; the completion, run in bash as
# readline would, must offer what the grammar accepts.
# Environment: BUILD (default build).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
CTL=$BUILD/pgwardctl
# shellcheck source=lib.sh
source "$here/lib.sh"

W=$(mktemp -d "${TMPDIR:-/tmp}/pgward-ctl-docs.XXXXXX")
trap 'rm -rf "$W"' EXIT
MAN=$top/docs/pgwardctl.8
COMP=$top/deploy/bash-completion/pgwardctl

# --- no drift -------------------------------------------------------------------------------
check "gen-ctl-docs.sh runs" "$top/scripts/gen-ctl-docs.sh" --pgwardctl "$CTL" --out "$W/gen"
check "the man page is what the tables make (scripts/gen-ctl-docs.sh)" \
	diff -u "$MAN" "$W/gen/docs/pgwardctl.8"
check "the completion is what the tables make (scripts/gen-ctl-docs.sh)" \
	diff -u "$COMP" "$W/gen/deploy/bash-completion/pgwardctl"
"$CTL" __tables >"$W/tables.json"
check "__tables: every object with its commands, options, exit statuses" python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))
names = [o["name"] for o in t["objects"]]
assert names == sorted(names) and "session" in names and "stats" in names, names
for o in t["objects"]:
    assert o["what"], o
    assert o["commands"] is None or all(c["name"] and c["what"] for c in o["commands"]), o
assert [s["status"] for s in t["exit_statuses"]] == [0, 1, 2, 3, 4]
assert {o["long"] for o in t["options"]} >= {"json", "pretty", "socket", "help", "version"}
' "$W/tables.json"

# --- the page renders cleanly, and says every command ---------------------------------------
if command -v man >/dev/null; then
	check "man renders the page without a warning" bash -c '
		w=$(MANWIDTH=80 man --warnings -l "$1" 2>&1 >/dev/null)
		[[ -z $w ]] || { echo "$w"; exit 1; }' _ "$MAN"
	MANWIDTH=200 man -l "$MAN" 2>/dev/null >"$W/man.txt"
	check "the page names every command and every section" python3 -c '
import json, sys
t, text = json.load(open(sys.argv[1])), open(sys.argv[2]).read()
for s in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
          "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"):
    assert "\n" + s + "\n" in text, s
for o in t["objects"]:
    for c in o["commands"] or [{"name": ""}]:
        line = ("pgwardctl %s %s" % (o["name"], c["name"])).strip()
        assert line in text, line
assert t["socket_env"] in text and t["socket_default"] in text
' "$W/tables.json" "$W/man.txt"
else
	check_skip "man renders the page without a warning" "no man (apt-get install man-db)"
	check_skip "the page names every command and every section" "no man (apt-get install man-db)"
fi
if command -v groff >/dev/null; then
	check "groff -ww finds nothing to warn of" bash -c '
		w=$(groff -ww -z -man "$1" 2>&1)
		[[ -z $w ]] || { echo "$w"; exit 1; }' _ "$MAN"
else
	check_skip "groff -ww finds nothing to warn of" "no groff (apt-get install groff-base)"
fi

# --- the completion, as readline runs it -------------------------------------------------------
# complete WORD... : COMPREPLY (sorted, one line) for the command line WORD... whose last word
# is the one being completed, from the directory $W/files
mkdir -p "$W/files" && touch "$W/files/a.json" "$W/files/b.json"
complete_line() {
	(cd "$W/files" && bash -c '
		source "$1"
		shift
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_pgwardctl pgwardctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " " | sed "s/ $//"' _ "$COMP" "$@")
}

# expect_completion NAME "WANTED" WORD...
expect_completion() {
	local name=$1 want=$2
	shift 2
	check "$name" bash -c '[[ $1 == "$2" ]] || { echo "got \"$1\", wanted \"$2\""; exit 1; }' _ \
		"$(complete_line "$@")" "$want"
}
expect_completion "completion: s -> scram session stats" "scram session stats" pgwardctl s
expect_completion "completion: session -> its commands" "help kill replay show watch" \
	pgwardctl session ""
expect_completion "completion: every object" \
	"$(python3 -c 'import json,sys; print(" ".join(sorted([o["name"] for o in json.load(open(sys.argv[1]))["objects"]] + ["help"])))' "$W/tables.json")" \
	pgwardctl ""
expect_completion "completion: after -j and -s PATH" "session" pgwardctl -j -s /x ses
expect_completion "completion: -s takes a path" "a.json b.json" pgwardctl -s ""
expect_completion "completion: options" "--pretty" pgwardctl --p
expect_completion "completion: s sh -> show (the prefix s resolved as pgwardctl does)" "show" \
	pgwardctl s sh
expect_completion "completion: session show's keywords" "id identity" \
	pgwardctl session show ""
expect_completion "completion: nothing offered for id's value" "" pgwardctl session show id ""
expect_completion "completion: approval approve's options" "--for --reason --session" \
	pgwardctl approval approve 7 --
expect_completion "completion: a FILE argument takes files" "a.json b.json" \
	pgwardctl p ch ""
expect_completion "completion: --config FILE takes files" "a.json b.json" \
	pgwardctl policy explain --config ""
expect_completion "completion: stats takes no command" "" pgwardctl stats ""

# every object's commands, from the program itself
while read -r obj cmds; do
	expect_completion "completion: $obj's commands are the table's" "$cmds" pgwardctl "$obj" ""
done < <(python3 -c '
import json, sys
for o in json.load(open(sys.argv[1]))["objects"]:
    if o["commands"] is not None:
        print(o["name"], " ".join(sorted([c["name"] for c in o["commands"]] + ["help"])))
' "$W/tables.json")

finish
