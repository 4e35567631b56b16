#!/usr/bin/env bash
# Fetch the PostgreSQL source matching the installed server and build the
# upstream test drivers pgward's transparency suites need.
#
#   scripts/pgsrc.sh                fetch + unpack + build (skips what is done)
#   scripts/pgsrc.sh --print-env    same, then print shell assignments:
#                                     eval "$(scripts/pgsrc.sh --print-env)"
#   scripts/pgsrc.sh --build-tools  also build pg_regress, pg_isolation_regress
#                                   and isolationtester from source instead of
#                                   using the ones Debian ships (same version)
#   scripts/pgsrc.sh --build-psql   build psql from source even when the source
#                                   is the installed version
#
# Printed variables: PGSRC_DIR PGSRC_VERSION PGSRC_INSTALLED_VERSION PG_BINDIR
# PG_REGRESS PG_REGRESS_BINDIR (give to pg_regress --bindir: the psql to use)
# PG_ISOLATION_REGRESS ISOLATIONTESTER LIBPQ_PIPELINE REGRESS_DLPATH
#
# Source: Debian's source package of the installed postgresql-NN, downloaded
# with `apt-get source --download-only` through a private apt configuration
# under $PGWARD_CACHE/apt whose deb-src entries are derived from the system's
# own apt sources (the system's apt configuration and state are only read).
# When the mirror lacks that exact version's files (security updates' sources
# may be missing), the newest older 15.x that it has is used, with a warning,
# and psql of that version is built for pg_regress (see build_psql).
# Unpacked with dpkg-source (Debian patches applied, like the installed
# binaries) into ${PGWARD_CACHE:-/var/cache/pgward}/postgresql-<upstream>.
#
# Built against the installed server with PGXS (postgresql-server-dev-NN):
#   libpq_pipeline                  src/test/modules/libpq_pipeline
#   regress.so autoinc.so refint.so in $PGSRC_DIR/pgward-dlpath (--dlpath)
# pg_regress, pg_isolation_regress and isolationtester: Debian's, from the
# PGXS tree (postgresql-client-NN), unless missing or --build-tools.
#
# Environment: PGWARD_CACHE (cache root), PG_MAJOR (default 15), PG_CONFIG
# (default /usr/lib/postgresql/$PG_MAJOR/bin/pg_config), PGSRC_JOBS.
set -euo pipefail

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
CACHE=${PGWARD_CACHE:-/var/cache/pgward}
PKG=postgresql-$PG_MAJOR
JOBS=${PGSRC_JOBS:-$(nproc 2>/dev/null || echo 2)}

log() { printf 'pgsrc.sh: %s\n' "$*" >&2; }
die() {
	printf 'pgsrc.sh: error: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# Private apt configuration

APT_DIR=$CACHE/apt

apt_private() {
	local cmd=$1
	shift
	"$cmd" \
		-o Dir::Etc::SourceList="$APT_DIR/sources.list" \
		-o Dir::Etc::SourceParts="$APT_DIR/sources.list.d" \
		-o Dir::State::Lists="$APT_DIR/lists" \
		-o Dir::Cache="$APT_DIR/cache" \
		-o Dir::Cache::archives="$APT_DIR/cache/archives" \
		-o Acquire::Languages=none \
		-o APT::Get::List-Cleanup=true \
		"$@"
}

# One-line format (sources.list, *.list): every `deb` entry becomes `deb-src`;
# existing deb-src entries are kept as they are.
convert_oneline() {
	sed -nE \
		-e 's/^[[:space:]]*deb([[:space:]]|\[)/deb-src\1/p' \
		-e '/^[[:space:]]*deb-src([[:space:]]|\[)/p' \
		"$1"
}

# deb822 format (*.sources): stanzas whose Types include deb or deb-src are
# kept with Types: deb-src (so inline Signed-By keys, Enabled: no etc. carry
# over); Architectures is dropped (it only narrows binary indexes).
convert_deb822() {
	awk '
		function flush() {
			if (keep && n > 0) {
				for (i = 1; i <= n; i++) print lines[i]
				print ""
			}
			n = 0; keep = 0; skipcont = 0
		}
		/^[[:space:]]*$/ { flush(); next }
		/^#/ { lines[++n] = $0; next }
		/^[ \t]/ { if (!skipcont) lines[++n] = $0; next }
		{
			skipcont = 0
			field = tolower($0); sub(/:.*/, "", field)
			if (field == "types") {
				t = $0; sub(/^[^:]*:/, "", t)
				if (t ~ /(^|[ \t])deb(-src)?([ \t]|$)/) keep = 1
				lines[++n] = "Types: deb-src"
				next
			}
			if (field == "architectures") { skipcont = 1; next }
			lines[++n] = $0
		}
		END { flush() }
	' "$1"
}

write_private_sources() {
	local sl sp f base n=0
	# Where the system keeps its sources, as apt itself resolves it.
	eval "$(apt-config shell sl Dir::Etc::sourcelist/f sp Dir::Etc::sourceparts/d)"
	sl=${sl:-/etc/apt/sources.list}
	sp=${sp:-/etc/apt/sources.list.d/}

	rm -rf "$APT_DIR/sources.list.d.new"
	mkdir -p "$APT_DIR/sources.list.d.new"
	: >"$APT_DIR/sources.list.new"
	if [[ -r $sl ]]; then
		convert_oneline "$sl" >>"$APT_DIR/sources.list.new"
	fi
	shopt -s nullglob
	for f in "$sp"*.list "$sp"*.sources; do
		base=${f##*/}
		# apt ignores part files whose names have other characters
		[[ $base =~ ^[A-Za-z0-9_.-]+$ ]] || continue
		n=$((n + 1))
		case $base in
		*.list) convert_oneline "$f" >"$APT_DIR/sources.list.d.new/$base" ;;
		*.sources) convert_deb822 "$f" >"$APT_DIR/sources.list.d.new/$base" ;;
		esac
	done
	shopt -u nullglob
	if ! grep -qs . "$APT_DIR/sources.list.new" "$APT_DIR/sources.list.d.new"/*; then
		die "found no deb entries in $sl or $sp*.{list,sources} to derive deb-src entries from"
	fi
	rm -rf "$APT_DIR/sources.list.d"
	mv "$APT_DIR/sources.list.d.new" "$APT_DIR/sources.list.d"
	mv "$APT_DIR/sources.list.new" "$APT_DIR/sources.list"
}

prepare_private_apt() {
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/download"
	write_private_sources
	# apt downloads as the unprivileged _apt user when it exists
	if [[ $EUID -eq 0 ]] && id _apt >/dev/null 2>&1; then
		chown _apt:root "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/download"
	fi
}

# Source versions to try, best first: the installed one, then the other
# versions of the same major that the repositories list, newest first (a
# mirror may list a version whose files it does not carry; then the next one
# is tried, with a warning).
candidate_versions() {
	local want=$1 srcpkg=$2 versions v rest=() i j tmp
	versions=$(apt_private apt-cache showsrc --only-source "$srcpkg" 2>/dev/null |
		sed -n 's/^Version: //p' | sort -u)
	printf '%s\n' "$want"
	for v in $versions; do
		[[ $v != "$want" && ${v%%.*} == "$PG_MAJOR" ]] && rest+=("$v")
	done
	# newest first (tiny list: simple sort with dpkg's ordering)
	for ((i = 0; i < ${#rest[@]}; i++)); do
		for ((j = i + 1; j < ${#rest[@]}; j++)); do
			if dpkg --compare-versions "${rest[j]}" gt "${rest[i]}"; then
				tmp=${rest[i]}
				rest[i]=${rest[j]}
				rest[j]=$tmp
			fi
		done
	done
	if ((${#rest[@]})); then
		printf '%s\n' "${rest[@]}"
	fi
}

upstream_of() {
	local v=$1
	v=${v#*:}
	printf '%s\n' "${v%-*}"
}

# ---------------------------------------------------------------------------
# Fetch + unpack

# Sets SRC.  $CACHE/<srcpkg>_<installed version>.src remembers which source
# tree serves the installed version, so that nothing is fetched next time.
fetch_and_unpack() {
	local srcpkg=$1 want=$2 ver upstream dest dsc tmp choice got=""
	choice=$CACHE/${srcpkg}_${want}.src
	if [[ -f $choice ]]; then
		dest=$(cat "$choice")
		if [[ -f $dest/.pgward-source ]]; then
			SRC=$dest
			return 0
		fi
	fi

	log "fetching Debian source $srcpkg $want"
	prepare_private_apt
	apt_private apt-get -q update >&2 ||
		log "apt-get update (private, deb-src) reported errors; trying with what it got"

	find "$APT_DIR/download" -mindepth 1 -maxdepth 1 -type f -delete
	while read -r ver; do
		dest=$CACHE/postgresql-$(upstream_of "$ver")
		if [[ -f $dest/.pgward-source && $(cat "$dest/.pgward-source") == "$srcpkg $ver" ]]; then
			got=$ver
			break
		fi
		if (cd "$APT_DIR/download" && apt_private apt-get -q --download-only source "$srcpkg=$ver" >&2); then
			got=$ver
			break
		fi
		log "could not download source $srcpkg=$ver; trying an older one"
		find "$APT_DIR/download" -mindepth 1 -maxdepth 1 -type f -delete
	done < <(candidate_versions "$want" "$srcpkg")
	[[ -n $got ]] || die "no source of $srcpkg $PG_MAJOR.x could be downloaded from the configured repositories"
	ver=$got
	upstream=$(upstream_of "$ver")
	dest=$CACHE/postgresql-$upstream
	if [[ $ver != "$want" ]]; then
		log "WARNING: the installed $srcpkg is $want but its source is not available here; using $ver." \
			"Upstream test expectations may differ slightly from the server's behaviour" \
			"(direct and proxied runs still use the same files)."
	fi

	if ! [[ -f $dest/.pgward-source && $(cat "$dest/.pgward-source") == "$srcpkg $ver" ]]; then
		dsc=$(find "$APT_DIR/download" -maxdepth 1 -name "${srcpkg}_*.dsc" -print -quit)
		[[ -n $dsc ]] || die "no .dsc downloaded for $srcpkg=$ver"
		tmp=$(mktemp -d "$CACHE/.unpack.XXXXXX")
		log "unpacking $(basename "$dsc")"
		if ! dpkg-source --no-check -x "$dsc" "$tmp/src" >"$tmp/dpkg-source.log" 2>&1; then
			cat "$tmp/dpkg-source.log" >&2
			rm -rf "$tmp"
			die "dpkg-source -x failed"
		fi
		printf '%s %s\n' "$srcpkg" "$ver" >"$tmp/src/.pgward-source"
		rm -rf "$dest"
		mv "$tmp/src" "$dest"
		rm -rf "$tmp"
	fi
	# the downloaded files are no longer needed
	find "$APT_DIR/download" -mindepth 1 -maxdepth 1 -type f -delete
	printf '%s\n' "$dest" >"$choice"
	SRC=$dest
}

# ---------------------------------------------------------------------------
# Build

# Stamp content: what the build depends on outside the source tree.
build_stamp_value() {
	printf '%s|%s|%s\n' "$("$PG_CONFIG" --version)" \
		"$(dpkg-query -W -f '${Version}' "postgresql-server-dev-$PG_MAJOR" 2>/dev/null || true)" "$1"
}

up_to_date() { # stampfile value
	[[ -f $1 && $(cat "$1") == "$2" ]]
}

pgxs_make() {
	# with_llvm=no: no JIT bitcode for these test-only modules
	make -s -j"$JOBS" USE_PGXS=1 PG_CONFIG="$PG_CONFIG" with_llvm=no "$@"
}

build_libpq_pipeline() {
	local dir=$SRC/src/test/modules/libpq_pipeline stamp value
	stamp=$dir/.pgward-built
	value=$(build_stamp_value pipeline)
	if up_to_date "$stamp" "$value" && [[ -x $dir/libpq_pipeline ]]; then
		return 0
	fi
	log "building libpq_pipeline"
	pgxs_make -C "$dir" clean >/dev/null 2>&1 || true
	# LIBS: the server's link line names libraries of every optional feature
	# (selinux, zstd, pam, ...) whose -dev packages need not be installed;
	# the client program needs none of them.
	pgxs_make -C "$dir" LIBS=-lm >&2 || die "building libpq_pipeline failed"
	printf '%s\n' "$value" >"$stamp"
}

# regress.so (src/test/regress/regress.c) and contrib/spi's autoinc.so and
# refint.so, together in the directory given to pg_regress --dlpath.
build_dlpath() {
	local dir=$SRC/pgward-dlpath stamp value f
	stamp=$dir/.pgward-built
	value=$(build_stamp_value dlpath)
	if up_to_date "$stamp" "$value" && [[ -f $dir/regress.so && -f $dir/autoinc.so && -f $dir/refint.so ]]; then
		return 0
	fi
	log "building regress.so autoinc.so refint.so (PGXS)"
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$SRC/src/test/regress/regress.c" "$SRC/contrib/spi/autoinc.c" "$SRC/contrib/spi/refint.c" "$dir/"
	cat >"$dir/Makefile" <<-'EOF'
		# generated by pgward scripts/pgsrc.sh
		MODULES = regress autoinc refint
		PG_CPPFLAGS = -I$(REGRESS_SRCDIR)
		PGXS := $(shell $(PG_CONFIG) --pgxs)
		include $(PGXS)
	EOF
	pgxs_make -C "$dir" REGRESS_SRCDIR="$SRC/src/test/regress" >&2 ||
		die "building the regression test modules failed"
	for f in regress autoinc refint; do
		[[ -f $dir/$f.so ]] || die "$dir/$f.so was not built"
	done
	printf '%s\n' "$value" >"$stamp"
}

# Configure the source tree once, with no optional feature the client-side
# test programs need (OpenSSL: so they can connect with TLS), and generate
# the catalog headers frontend programs include.
configure_tree() {
	local stamp=$SRC/.pgward-configured value
	value=$(build_stamp_value configure)
	if up_to_date "$stamp" "$value"; then
		return 0
	fi
	log "configuring the source tree"
	(
		cd "$SRC"
		./configure -q --without-readline --without-icu --without-zlib --without-llvm \
			--with-openssl --with-system-tzdata=/usr/share/zoneinfo \
			--bindir="$("$PG_CONFIG" --bindir)" CFLAGS=-O1 >"$SRC/pgward-configure.log" 2>&1
	) || {
		tail -n 40 "$SRC/pgward-configure.log" >&2
		die "configure failed (log: $SRC/pgward-configure.log)"
	}
	tree_make "the generated headers" src/backend generated-headers
	printf '%s\n' "$value" >"$stamp"
}

# make in one directory of the configured tree, in parallel; a failure is retried once
# serially (one make process cannot race with itself), then fatal.
tree_make() { # what dir [target...]
	local what=$1 dir=$2
	shift 2
	make -s -j"$JOBS" -C "$SRC/$dir" "$@" >&2 && return 0
	log "building $what in parallel failed; retrying serially"
	make -s -j1 -C "$SRC/$dir" "$@" >&2 || die "building $what failed"
}

# The libraries every client program links, built one directory after the other, in the
# order PostgreSQL's top-level make builds them.  A program's Makefile reaches them through
# order-only "submake" prerequisites (psql: submake-libpq submake-libpgport
# submake-libpgfeutils; libpq itself: submake-libpgport), each a separate recursive make of
# src/port and src/common; under -j those run at the same time in the same directory and
# race on the same objects (seen as `ar: path_shlib.o: No such file or directory`).
# Built first, they are up to date when the program's make looks at them, so its
# recursive makes have nothing to write.  Parallelism stays inside each directory.
build_client_libs() {
	local dir
	for dir in src/port src/common src/interfaces/libpq src/fe_utils; do
		tree_make "$dir" "$dir" all
	done
}

# psql of the source's version, for pg_regress: the regression scripts are
# written for their own psql (e.g. psql 15.19+ skips the inline data of a
# COPY FROM STDIN that failed; older scripts rely on the opposite), so when
# the source is not the installed version its psql must run them.  It links
# against the system's libpq at run time.
build_psql() {
	local stamp=$SRC/src/bin/psql/.pgward-built value
	value=$(build_stamp_value psql)
	if up_to_date "$stamp" "$value" && [[ -x $SRC/src/bin/psql/psql ]]; then
		return 0
	fi
	configure_tree
	log "building psql $(upstream_of "$(cut -d' ' -f2 "$SRC/.pgward-source")") for pg_regress"
	build_client_libs
	tree_make psql src/bin/psql all
	printf '%s\n' "$value" >"$stamp"
}

# pg_regress / pg_isolation_regress / isolationtester from source.
build_tools_from_source() {
	local stamp=$SRC/.pgward-tools-built value
	value=$(build_stamp_value tools)
	if up_to_date "$stamp" "$value" && [[ -x $SRC/src/test/isolation/isolationtester ]]; then
		return 0
	fi
	configure_tree
	log "building pg_regress, pg_isolation_regress, isolationtester"
	build_client_libs
	tree_make pg_regress src/test/regress pg_regress
	tree_make "the isolation tools" src/test/isolation all
	printf '%s\n' "$value" >"$stamp"
}

# The directory whose psql pg_regress runs (its --bindir).
locate_psql() {
	local srcver
	srcver=$(cut -d' ' -f2 "$SRC/.pgward-source")
	if [[ $BUILD_PSQL -eq 1 || $(upstream_of "$srcver") != "$(upstream_of "$INSTALLED")" ]]; then
		build_psql
		PG_REGRESS_BINDIR=$SRC/src/bin/psql
	else
		PG_REGRESS_BINDIR=$("$PG_CONFIG" --bindir)
	fi
}

locate_tools() {
	local pgxsdir
	pgxsdir=$(dirname "$(dirname "$("$PG_CONFIG" --pgxs)")")/..
	pgxsdir=$(cd "$pgxsdir" && pwd)
	if [[ $BUILD_TOOLS -eq 0 &&
		-x $pgxsdir/src/test/regress/pg_regress &&
		-x $pgxsdir/src/test/isolation/pg_isolation_regress &&
		-x $pgxsdir/src/test/isolation/isolationtester ]]; then
		PG_REGRESS=$pgxsdir/src/test/regress/pg_regress
		PG_ISOLATION_REGRESS=$pgxsdir/src/test/isolation/pg_isolation_regress
		ISOLATIONTESTER=$pgxsdir/src/test/isolation/isolationtester
		return 0
	fi
	build_tools_from_source
	PG_REGRESS=$SRC/src/test/regress/pg_regress
	PG_ISOLATION_REGRESS=$SRC/src/test/isolation/pg_isolation_regress
	ISOLATIONTESTER=$SRC/src/test/isolation/isolationtester
}

# The server (running as its own OS user) reads the test data files and loads
# the modules: make everything world-readable.
fix_permissions() {
	chmod -R a+rX "$SRC"
	chmod a+rx "$CACHE"
}

print_env() {
	printf 'PGSRC_VERSION=%q\n' "$(cut -d' ' -f2 "$SRC/.pgward-source")"
	printf 'PGSRC_DIR=%q\n' "$SRC"
	printf 'PGSRC_INSTALLED_VERSION=%q\n' "$INSTALLED"
	printf 'PG_BINDIR=%q\n' "$("$PG_CONFIG" --bindir)"
	printf 'PG_REGRESS_BINDIR=%q\n' "$PG_REGRESS_BINDIR"
	printf 'PG_REGRESS=%q\n' "$PG_REGRESS"
	printf 'PG_ISOLATION_REGRESS=%q\n' "$PG_ISOLATION_REGRESS"
	printf 'ISOLATIONTESTER=%q\n' "$ISOLATIONTESTER"
	printf 'LIBPQ_PIPELINE=%q\n' "$SRC/src/test/modules/libpq_pipeline/libpq_pipeline"
	printf 'REGRESS_DLPATH=%q\n' "$SRC/pgward-dlpath"
}

usage() {
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
}

main() {
	local print=0 arg
	BUILD_TOOLS=0
	BUILD_PSQL=0
	for arg in "$@"; do
		case $arg in
		--print-env) print=1 ;;
		--build-tools) BUILD_TOOLS=1 ;;
		--build-psql) BUILD_PSQL=1 ;;
		-h | --help)
			usage
			return 0
			;;
		*) die "unknown argument: $arg (try --help)" ;;
		esac
	done

	[[ -x $PG_CONFIG ]] || die "$PG_CONFIG not found: install postgresql-server-dev-$PG_MAJOR (scripts/deps.sh)"
	local srcpkg want
	read -r srcpkg want < <(dpkg-query -W -f '${source:Package} ${source:Version}\n' "$PKG" 2>/dev/null) ||
		die "$PKG is not installed (scripts/deps.sh)"
	[[ -n $want ]] || die "$PKG is not installed (scripts/deps.sh)"
	INSTALLED=$want

	mkdir -p "$CACHE"
	# one pgsrc.sh at a time per cache
	exec 9>"$CACHE/.pgsrc.lock"
	flock 9

	fetch_and_unpack "$srcpkg" "$want"
	build_libpq_pipeline
	build_dlpath
	locate_tools
	locate_psql
	fix_permissions

	if [[ $print -eq 1 ]]; then
		print_env
	else
		print_env | sed 's/^/pgsrc.sh: /' >&2
	fi
}

main "$@"
