# shellcheck shell=bash disable=SC2034
# Shared by tests/fuzz/run.sh (the bounded run of `make check`) and tests/fuzz/fuzz.sh (the
# campaign of `make fuzz`): where things are, each harness's libFuzzer options, the seeds made
# from the project's files, and one libFuzzer run with what it did.
#
#   fuzz_names                  the harness names (tests/fuzz/fuzz_<name>.c), one a line
#   fuzz_build LOG              make fuzz-build, output to LOG; status of make
#   fuzz_inputs NAME            the regression inputs: files of tests/fuzz/NAME/, sorted
#   fuzz_derived_seeds NAME DIR [MAX]
#                               the seeds of a coverage-guided run, into DIR: the regression
#                               inputs but those named crash-*, and seeds made from the
#                               project's files: the policy corpus
#                               (sql), PGWARD_REGRESS_SQL's .sql files cut at ";\n" (sql, at
#                               most MAX pieces, evenly spread, default 2000), the docs' and
#                               the tests' configurations (config)
#   fuzz_run NAME SECONDS CORPUS ARTIFACTS LOG [SEED_DIR...]
#                               a coverage-guided run; sets FUZZ_EXECS, FUZZ_RATE (exec/s),
#                               FUZZ_CORPUS (inputs in the corpus at the end), FUZZ_ARTIFACT
#                               (the saved input of a crash, leak, timeout or OOM, or empty),
#                               FUZZ_SUMMARY (the sanitizer's or the harness's one-line reason);
#                               returns libFuzzer's status
#   fuzz_replay NAME LOG ARTIFACTS FILE...
#                               runs FILE... once each; sets FUZZ_FAILED to the inputs that
#                               crashed (one a line) and FUZZ_SUMMARIES to their reasons
# Environment: FUZZ_SEED (libFuzzer's -seed, for a reproducible run), FUZZ_TIMEOUT (seconds one
# input may take, default 25), FUZZ_EXTRA (more libFuzzer options, word-split).

FUZZ_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FUZZ_SRC=$FUZZ_TOP/tests/fuzz
FUZZ_BUILD=$FUZZ_TOP/build/fuzz

fuzz_names() {
	local f
	for f in "$FUZZ_SRC"/fuzz_*.c; do
		[[ -e $f ]] || continue
		f=${f##*/fuzz_}
		printf '%s\n' "${f%.c}"
	done
}

fuzz_build() {
	make -C "$FUZZ_TOP" fuzz-build >"$1" 2>&1
}

# Longest input libFuzzer makes, per harness: a little over what the parser accepts or what
# the inputs of interest need (SQL: past the 8 KiB from which the nesting guard scans).
fuzz_max_len() {
	case $1 in
	scram) echo 1100 ;;  # two messages of at most 511 bytes
	startup) echo 4096 ;;
	jwt) echo 4096 ;;    # RS256 tokens are ~600 bytes; the JWKS of the test keys ~700
	config) echo 8192 ;; # the complete example of docs/configuration.md is ~1.5 KiB
	sql) echo 16384 ;;
	session) echo 8192 ;; # a session: startup, login, a few statements each way
	*) echo 4096 ;;
	esac
}

fuzz_inputs() {
	local d=$FUZZ_SRC/$1
	[[ -d $d ]] || return 0
	find "$d" -maxdepth 1 -type f ! -name '.*' | LC_ALL=C sort
}

fuzz_derived_seeds() {
	local name=$1 out=$2 max=${3:-2000} f
	mkdir -p "$out" || return 1
	# the regression inputs, but not the known crashers: a run should look for new ones
	while IFS= read -r f; do
		[[ ${f##*/} == crash-* ]] || cp "$f" "$out/input-${f##*/}"
	done < <(fuzz_inputs "$name")
	case $name in
	sql)
		python3 - "$FUZZ_TOP/tests/policy/corpus.tsv" "$out" "${PGWARD_REGRESS_SQL:-}" "$max" <<'PY'
import glob, os, sys
corpus, out, regress, cap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
texts = []
if os.path.exists(corpus):
    for line in open(corpus, encoding="utf-8", errors="surrogateescape"):
        if line.startswith("#") or not line.strip():
            continue
        cols = line.rstrip("\n").split("\t")
        if len(cols) >= 3:
            texts += [t for t in cols[2].split(" || ") if t]
pieces = []
if regress and os.path.isdir(regress):
    for f in sorted(glob.glob(os.path.join(regress, "*.sql"))):
        text = open(f, "rb").read()
        # psql's meta-commands are not SQL
        text = b"\n".join(l for l in text.split(b"\n") if not l.startswith(b"\\"))
        pieces += [p.strip() + b";" for p in text.split(b";\n") if p.strip()]
    if len(pieces) > cap:
        step = len(pieces) / cap
        pieces = [pieces[int(i * step)] for i in range(cap)]
for i, t in enumerate(texts):
    open(os.path.join(out, "corpus-%03d" % i), "wb").write(t.encode("utf-8", "surrogateescape"))
for i, p in enumerate(pieces):
    open(os.path.join(out, "regress-%05d" % i), "wb").write(p)
PY
		;;
	config)
		# the docs' examples (README.md, docs/configuration.md, docs/policy.md), with their paths moved into the harness's directory
		python3 - "$FUZZ_TOP/tests/policy/policy.json.in" "$out" "$FUZZ_TOP/README.md" \
			"$FUZZ_TOP/docs/configuration.md" "$FUZZ_TOP/docs/policy.md" <<'PY'
import os, re, sys
policy, out, docs = sys.argv[1], sys.argv[2], sys.argv[3:]
def fix(t):
    for a, b in (("/etc/pgward/", "@DIR@/"), ("/run/pgward/", "@DIR@/sock/"),
                 ("/var/run/postgresql", "@DIR@/sock")):
        t = t.replace(a, b)
    return t
for doc in docs:
    name = os.path.basename(doc).rsplit(".", 1)[0].lower()
    blocks = re.findall(r"```json\n(.*?)```", open(doc, encoding="utf-8").read(), re.S)
    for i, b in enumerate(blocks):
        open("%s/%s-%02d" % (out, name, i), "w", encoding="utf-8").write(fix(b))
t = open(policy, encoding="utf-8").read()
t = t.replace("@PORT@", "6432").replace("@PGPORT@", "5432").replace("@PWFILE@", "@DIR@/app.pw")
open("%s/policy-json-in" % out, "w", encoding="utf-8").write(t)
PY
		;;
	esac
}

# The libFuzzer options of a run of harness $1 (without the corpus directories).
fuzz_opts() {
	local name=$1 dict=$FUZZ_SRC/$1.dict
	FUZZ_OPTS=(-max_len="$(fuzz_max_len "$name")" -timeout="${FUZZ_TIMEOUT:-25}"
		-rss_limit_mb=2560 -print_final_stats=1)
	[[ -f $dict ]] && FUZZ_OPTS+=(-dict="$dict")
	[[ -n ${FUZZ_SEED:-} ]] && FUZZ_OPTS+=(-seed="$FUZZ_SEED")
	# shellcheck disable=SC2206
	[[ -n ${FUZZ_EXTRA:-} ]] && FUZZ_OPTS+=($FUZZ_EXTRA)
	return 0
}

# The one-line reason of a failed run in LOG: the harness's own message, else the sanitizer's.
fuzz_reason() {
	local r
	r=$(grep -m1 -E '^fuzz_[a-z0-9_]+: ' "$1" | grep -v ': Running [0-9]* inputs' || true)
	[[ -n $r ]] || r=$(grep -m1 -E '^SUMMARY: ' "$1" || true)
	[[ -n $r ]] || r=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$1" || true)
	[[ -n $r ]] || r="exit status $2, no sanitizer report (see the log)"
	r=$(tr -cd '[:print:]' <<<"$r")
	printf '%s' "${r:0:300}"
}

fuzz_run() {
	local name=$1 secs=$2 corpus=$3 artifacts=$4 log=$5 rc
	shift 5
	mkdir -p "$corpus" "$artifacts" || return 1
	fuzz_opts "$name"
	local d dirs=()
	for d in "$@"; do # libFuzzer stops at a seed directory that does not exist
		[[ -d $d ]] && dirs+=("$d")
	done
	"$FUZZ_BUILD/fuzz_$name" "${FUZZ_OPTS[@]}" -max_total_time="$secs" \
		-artifact_prefix="$artifacts/" "$corpus" "${dirs[@]}" >"$log" 2>&1
	rc=$?
	FUZZ_EXECS=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	FUZZ_RATE=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	FUZZ_CORPUS=$(grep -oE ' corp: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
	FUZZ_ARTIFACT=$(sed -n 's/.*Test unit written to //p' "$log" | tail -1)
	FUZZ_EXECS=${FUZZ_EXECS:-0} FUZZ_RATE=${FUZZ_RATE:-0} FUZZ_CORPUS=${FUZZ_CORPUS:-0}
	FUZZ_SUMMARY=
	[[ $rc -eq 0 ]] || FUZZ_SUMMARY=$(fuzz_reason "$log" "$rc")
	return $rc
}

fuzz_replay() {
	local name=$1 log=$2 artifacts=$3 bad rc
	shift 3
	local files=("$@")
	FUZZ_FAILED='' FUZZ_SUMMARIES=''
	mkdir -p "$artifacts" || return 1
	fuzz_opts "$name"
	: >"$log"
	while ((${#files[@]})); do
		"$FUZZ_BUILD/fuzz_$name" "${FUZZ_OPTS[@]}" -artifact_prefix="$artifacts/" \
			"${files[@]}" >"$log.one" 2>&1
		rc=$?
		cat "$log.one" >>"$log"
		[[ $rc -ne 0 ]] || break
		# the input that crashed is the last one started; go on with the ones after it
		bad=$(sed -n 's/^Running: //p' "$log.one" | tail -1)
		[[ -n $bad ]] || bad=${files[0]}
		FUZZ_FAILED+=$bad$'\n'
		FUZZ_SUMMARIES+="${bad##*/}: $(fuzz_reason "$log.one" "$rc")"$'\n'
		local i rest=()
		for i in "${!files[@]}"; do
			[[ ${files[$i]} == "$bad" ]] && { rest=("${files[@]:i+1}"); break; }
		done
		files=("${rest[@]}")
	done
	rm -f "$log.one"
	[[ -z $FUZZ_FAILED ]]
}
