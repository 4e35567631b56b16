# shellcheck shell=bash
# Throwaway PostgreSQL clusters for tests.  Source it from bash:
#
#   source scripts/pgtmp.sh
#   pgtmp_start [NAME]          start a fresh cluster; exports PGTMP_* (below)
#   pgtmp_psql [psql args...]   psql as superuser over TCP to the current cluster
#   pgtmp_cert DIR NAME CN [SANS]
#                               issue DIR/NAME.crt + DIR/NAME.key signed by the
#                               current cluster's CA (SANS like
#                               "DNS:localhost,IP:127.0.0.1"; default DNS:CN)
#   pgtmp_stop [DIR]            stop a cluster and delete its directory
#                               (default: the current one, $PGTMP_DIR)
#   pgtmp_stop_all              stop every cluster this shell started
#   pgtmp_use DIR               make another running cluster the current one
#                               (re-exports PGTMP_* from DIR/env)
#
# Exported after pgtmp_start (the "current" cluster; several clusters may run
# at once, each in its own directory on its own port; $PGTMP_DIR/env holds
# the same assignments for other processes to source):
#   PGTMP_DIR      the cluster's private temp directory
#   PGTMP_PORT     TCP port (same number for the unix socket)
#   PGTMP_HOST     127.0.0.1
#   PGTMP_SOCKDIR  unix socket directory
#   PGTMP_CA       CA certificate that signed the server certificate
#   PGTMP_PGBIN    /usr/lib/postgresql/15/bin
#   PGTMP_DATA     data directory;  PGTMP_LOG  server log
# Files: $PGTMP_DIR/postgres.pw (superuser "postgres"), and pgward_md5.pw,
# pgward_clear.pw, pgward_scram.pw for the LOGIN roles of the same names:
#   pgward_md5    password stored as md5, pg_hba method md5
#   pgward_clear  pg_hba method password (cleartext on the wire)
#   pgward_scram  scram-sha-256 (as every other role)
# TLS is on (server.crt: CN=localhost, SAN DNS:localhost,IP:127.0.0.1,IP:::1).
#
# Tunables (environment, read by pgtmp_start):
#   PGTMP_LISTEN       listen_addresses (default 127.0.0.1 plus ::1 when usable)
#   PGTMP_PGBIN        server binaries (default /usr/lib/postgresql/15/bin)
#   PGTMP_PARENT       where the temp directory goes (default ${TMPDIR:-/tmp})
#   PGTMP_CONF         extra postgresql.conf lines appended last
#   PGTMP_OS_USER      OS user running the server when root (default postgres)
#
# pgtmp_start installs an EXIT/INT/TERM trap (chained after any trap already
# set) that stops every cluster this shell started.  Nothing here touches
# /var/lib/postgresql or the distribution's clusters.
# The functions work under `set -euo pipefail` and do not change shell options.
# Call pgtmp_start in the shell that uses the cluster (not inside $(...): the
# exports and the trap would stay in that subshell).

# "PID:DIR" of the clusters started from this shell (PID: the (sub)shell that
# started it, so a subshell's trap never stops its parent's clusters).
if ! declare -p PGTMP__CLUSTERS >/dev/null 2>&1; then
	PGTMP__CLUSTERS=()
fi
PGTMP__TRAPPED=${PGTMP__TRAPPED:-0}

pgtmp__err() { printf 'pgtmp: error: %s\n' "$*" >&2; }
pgtmp__log() { [[ ${PGTMP_QUIET:-0} == 1 ]] || printf 'pgtmp: %s\n' "$*" >&2; }

# Run a command as the server's OS user (root: runuser; otherwise as is),
# from the cluster directory so no other working directory matters.
pgtmp__as_owner() {
	local dir=$1
	shift
	if [[ $EUID -eq 0 ]]; then
		(cd "$dir" && HOME=$dir runuser -u "${PGTMP_OS_USER:-postgres}" -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

# A TCP port nobody listens on (IPv4 or IPv6), outside the ephemeral range.
pgtmp__free_port() {
	local listening port tries=0
	listening=$(ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }' | sort -u)
	while ((tries < 200)); do
		port=$((15000 + RANDOM % 15000))
		tries=$((tries + 1))
		if grep -qx "$port" <<<"$listening"; then
			continue
		fi
		# also skip ports another pgtmp cluster picked but has not bound yet
		if compgen -G "${PGTMP_PARENT:-${TMPDIR:-/tmp}}/pgtmp-*/.port.$port" >/dev/null; then
			continue
		fi
		printf '%s\n' "$port"
		return 0
	done
	pgtmp__err "no free TCP port found"
	return 1
}

pgtmp__ipv6_ok() {
	ip -6 addr show dev lo 2>/dev/null | grep -q 'inet6 ::1/128'
}

pgtmp__genpw() {
	openssl rand -hex 24
}

# Self-signed CA + server certificate in $dir.
pgtmp__make_tls() {
	local dir=$1
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -subj "/CN=pgtmp test CA $(basename "$dir")" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" 2>/dev/null ||
		{
			pgtmp__err "creating the CA failed"
			return 1
		}
	chmod 600 "$dir/ca.key" && chmod 644 "$dir/ca.crt" || return 1
	PGTMP_DIR=$dir pgtmp_cert "$dir" server localhost "DNS:localhost,IP:127.0.0.1,IP:::1" >/dev/null || return 1
	pgtmp__give "$dir/server.key" "$dir/server.crt"
}

# pgtmp_cert DIR NAME CN [SANS] -> DIR/NAME.crt, DIR/NAME.key (mode 600),
# signed by $PGTMP_DIR/ca.key.  Prints the two paths.
pgtmp_cert() {
	if (($# < 3)); then
		pgtmp__err "usage: pgtmp_cert DIR NAME CN [SANS]"
		return 2
	fi
	local dir=$1 name=$2 cn=$3 sans=${4:-DNS:$3} ca=${PGTMP_DIR:-}
	if [[ -z $ca || ! -f $ca/ca.key ]]; then
		pgtmp__err "pgtmp_cert: no CA (start a cluster with pgtmp_start first, or set PGTMP_DIR)"
		return 1
	fi
	sans=${sans#subjectAltName=}
	mkdir -p "$dir" || return 1
	local ext
	ext=$(mktemp "$dir/.$name.ext.XXXXXX") || return 1
	printf '%s\n' \
		"basicConstraints=critical,CA:FALSE" \
		"keyUsage=critical,digitalSignature,keyEncipherment" \
		"extendedKeyUsage=serverAuth,clientAuth" \
		"subjectKeyIdentifier=hash" \
		"authorityKeyIdentifier=keyid" \
		"subjectAltName=$sans" >"$ext"
	if ! (
		umask 077
		openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-keyout "$dir/$name.key" -subj "/CN=$cn" 2>/dev/null |
			openssl x509 -req -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
				-set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
				-extfile "$ext" -out "$dir/$name.crt" 2>/dev/null
	); then
		rm -f "$ext"
		pgtmp__err "pgtmp_cert: issuing $dir/$name.crt failed (SANS: $sans)"
		return 1
	fi
	rm -f "$ext"
	chmod 600 "$dir/$name.key"
	chmod 644 "$dir/$name.crt"
	printf '%s\n%s\n' "$dir/$name.crt" "$dir/$name.key"
}

# chown to the server's OS user when running as root.
pgtmp__give() {
	if [[ $EUID -eq 0 ]]; then
		chown "${PGTMP_OS_USER:-postgres}:" "$@"
	fi
}

# Everything of pgtmp_start after the directory exists.  Every step checks
# its status itself (errexit does not apply inside a tested function), and
# the caller removes the directory on failure.  Writes $dir/env on success.
pgtmp__setup() {
	local dir=$1 name=$2
	local pgbin=${PGTMP_PGBIN:-/usr/lib/postgresql/15/bin}
	local data=$dir/data sock=$dir/sock log=$dir/postgres.log
	local listen role port="" attempt

	if [[ ! -x $pgbin/initdb || ! -x $pgbin/pg_ctl || ! -x $pgbin/psql ]]; then
		pgtmp__err "PostgreSQL binaries not found in $pgbin (install postgresql-15: scripts/deps.sh)"
		return 1
	fi
	if [[ $EUID -eq 0 ]] && ! id "${PGTMP_OS_USER:-postgres}" >/dev/null 2>&1; then
		pgtmp__err "OS user ${PGTMP_OS_USER:-postgres} does not exist"
		return 1
	fi

	if [[ -n ${PGTMP_LISTEN:-} ]]; then
		listen=$PGTMP_LISTEN
	elif pgtmp__ipv6_ok; then
		listen='127.0.0.1,::1'
	else
		listen='127.0.0.1'
	fi

	# $dir: root's, world-traversable; data/ and sock/ and the log: the server's
	if ! { chmod 755 "$dir" && mkdir -m 700 "$data" && mkdir -m 755 "$sock" && : >"$log" &&
		chmod 644 "$log" && pgtmp__give "$data" "$sock" "$log"; }; then
		pgtmp__err "preparing $dir failed"
		return 1
	fi

	# passwords (root-only files; the server never needs them)
	for role in postgres pgward_md5 pgward_clear pgward_scram; do
		(umask 077 && pgtmp__genpw >"$dir/$role.pw") || {
			pgtmp__err "generating a password failed"
			return 1
		}
	done

	# initdb reads the superuser password from a file the server user can read
	local pwtmp=$dir/.initdb.pw
	cp "$dir/postgres.pw" "$pwtmp" && pgtmp__give "$pwtmp" || return 1
	if ! pgtmp__as_owner "$dir" "$pgbin/initdb" -D "$data" -U postgres \
		--auth=scram-sha-256 --pwfile="$pwtmp" \
		--encoding=UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		pgtmp__err "initdb failed"
		return 1
	fi
	rm -f "$pwtmp"

	pgtmp__make_tls "$dir" || return 1

	cat >"$data/pg_hba.conf" <<-EOF || return 1
		# written by pgward scripts/pgtmp.sh
		# TYPE  DATABASE     USER          ADDRESS        METHOD
		local   all          pgward_md5                   md5
		host    all          pgward_md5    127.0.0.1/32   md5
		host    all          pgward_md5    ::1/128        md5
		local   all          pgward_clear                 password
		host    all          pgward_clear  127.0.0.1/32   password
		host    all          pgward_clear  ::1/128        password
		local   all          all                          scram-sha-256
		host    all          all           127.0.0.1/32   scram-sha-256
		host    all          all           ::1/128        scram-sha-256
		local   replication  all                          scram-sha-256
		host    replication  all           127.0.0.1/32   scram-sha-256
		host    replication  all           ::1/128        scram-sha-256
	EOF
	printf "\ninclude_if_exists = 'pgtmp.conf'\n" >>"$data/postgresql.conf" || return 1

	for attempt in 1 2 3 4 5; do
		port=$(pgtmp__free_port) || return 1
		: >"$dir/.port.$port" || return 1
		cat >"$data/pgtmp.conf" <<-EOF || return 1
			# written by pgward scripts/pgtmp.sh (cluster "$name")
			listen_addresses = '$listen'
			port = $port
			unix_socket_directories = '$sock'
			max_connections = 300
			password_encryption = 'scram-sha-256'
			ssl = on
			ssl_cert_file = '$dir/server.crt'
			ssl_key_file = '$dir/server.key'
			# speed: the cluster is thrown away
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			# for the regression and isolation suites
			max_prepared_transactions = 10
			max_locks_per_transaction = 128
			lc_messages = 'C'
			log_line_prefix = '%m [%p] %q%u@%d '
			${PGTMP_CONF:-}
		EOF
		chmod 644 "$data/pgtmp.conf" "$data/pg_hba.conf" &&
			pgtmp__give "$data/pgtmp.conf" "$data/pg_hba.conf" || return 1
		: >"$log"
		if pgtmp__as_owner "$dir" "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null 2>&1; then
			break
		fi
		rm -f "$dir/.port.$port"
		if grep -qE 'Address already in use|could not create any TCP/IP sockets|could not bind' "$log"; then
			pgtmp__log "port $port was taken; retrying (attempt $attempt)"
			port=""
			continue
		fi
		tail -n 30 "$log" >&2
		pgtmp__err "the server did not start (log above)"
		return 1
	done
	if [[ -z $port ]]; then
		pgtmp__err "could not find a port to start on"
		return 1
	fi

	# the test roles
	local pw_md5 pw_clear pw_scram pw_pg
	pw_md5=$(cat "$dir/pgward_md5.pw") && pw_clear=$(cat "$dir/pgward_clear.pw") &&
		pw_scram=$(cat "$dir/pgward_scram.pw") && pw_pg=$(cat "$dir/postgres.pw") || return 1
	if ! PGPASSWORD=$pw_pg "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 \
		-h "$sock" -p "$port" -U postgres -d postgres >"$dir/setup.log" 2>&1 <<-EOF; then
			CREATE ROLE pgward_md5 LOGIN;
			CREATE ROLE pgward_clear LOGIN;
			CREATE ROLE pgward_scram LOGIN;
			SET password_encryption = 'md5';
			ALTER ROLE pgward_md5 PASSWORD '$pw_md5';
			SET password_encryption = 'scram-sha-256';
			ALTER ROLE pgward_clear PASSWORD '$pw_clear';
			ALTER ROLE pgward_scram PASSWORD '$pw_scram';
		EOF
		cat "$dir/setup.log" >&2
		pgtmp__err "creating the test roles failed"
		return 1
	fi

	cat >"$dir/env" <<-EOF || return 1
		PGTMP_DIR=$(printf '%q' "$dir")
		PGTMP_PORT=$port
		PGTMP_HOST=127.0.0.1
		PGTMP_SOCKDIR=$(printf '%q' "$sock")
		PGTMP_CA=$(printf '%q' "$dir/ca.crt")
		PGTMP_PGBIN=$(printf '%q' "$pgbin")
		PGTMP_DATA=$(printf '%q' "$data")
		PGTMP_LOG=$(printf '%q' "$log")
		PGTMP_NAME=$(printf '%q' "$name")
	EOF
	chmod 644 "$dir/env"
}

pgtmp__install_trap() {
	[[ $PGTMP__TRAPPED == "$BASHPID" ]] && return 0
	local sig old code parts
	for sig in EXIT INT TERM; do
		old=$(trap -p "$sig")
		if [[ -n $old ]]; then
			# `trap -p` prints, shell-quoted: trap -- 'COMMAND' SIG
			eval "parts=($old)"
			old=${parts[2]}
		fi
		case $sig in
		EXIT) code="pgtmp_stop_all${old:+; $old}" ;;
		INT) code="pgtmp_stop_all${old:+; $old}; exit 130" ;;
		TERM) code="pgtmp_stop_all${old:+; $old}; exit 143" ;;
		esac
		# shellcheck disable=SC2064 # expanded now on purpose
		trap "$code" "$sig"
	done
	PGTMP__TRAPPED=$BASHPID
}

# pgtmp_start [NAME]
pgtmp_start() {
	local name=${1:-pgtmp} parent=${PGTMP_PARENT:-${TMPDIR:-/tmp}} dir
	if [[ ! $name =~ ^[A-Za-z0-9_.-]+$ ]]; then
		pgtmp__err "pgtmp_start: bad name '$name' (letters, digits, . _ -)"
		return 2
	fi
	pgtmp__install_trap
	dir=$(mktemp -d "$parent/pgtmp-$name.XXXXXX") || {
		pgtmp__err "mktemp -d in $parent failed"
		return 1
	}
	PGTMP__CLUSTERS+=("$BASHPID:$dir")
	if ! : >"$dir/.pgtmp" || ! pgtmp__setup "$dir" "$name"; then
		pgtmp_stop "$dir"
		return 1
	fi
	pgtmp_use "$dir" || return 1
	pgtmp__log "cluster '$name' up: port $PGTMP_PORT, dir $PGTMP_DIR"
}

# pgtmp_use DIR: make the cluster in DIR the current one.
pgtmp_use() {
	if [[ -z ${1:-} || ! -f $1/env || ! -f $1/.pgtmp ]]; then
		pgtmp__err "pgtmp_use: ${1:-(none)} is not a running pgtmp cluster directory"
		return 1
	fi
	# shellcheck source=/dev/null
	source "$1/env"
	export PGTMP_DIR PGTMP_PORT PGTMP_HOST PGTMP_SOCKDIR PGTMP_CA PGTMP_PGBIN PGTMP_DATA PGTMP_LOG PGTMP_NAME
}

# pgtmp_stop [DIR]: immediate shutdown, then remove the directory.
pgtmp_stop() {
	local dir=${1:-${PGTMP_DIR:-}} pgbin=${PGTMP_PGBIN:-/usr/lib/postgresql/15/bin} pid i
	[[ -n $dir ]] || return 0
	if [[ ! -f $dir/.pgtmp ]]; then
		[[ -e $dir ]] && pgtmp__err "pgtmp_stop: $dir is not a pgtmp directory; not touching it"
		pgtmp__forget "$dir"
		return 0
	fi
	if [[ -f $dir/data/postmaster.pid ]]; then
		pgtmp__as_owner "$dir" "$pgbin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
		if [[ -f $dir/data/postmaster.pid ]]; then
			pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null || true)
			if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
				kill -9 "$pid" 2>/dev/null || true
				for ((i = 0; i < 50; i++)); do
					kill -0 "$pid" 2>/dev/null || break
					sleep 0.1
				done
			fi
		fi
	fi
	rm -rf "$dir"
	pgtmp__forget "$dir"
	if [[ ${PGTMP_DIR:-} == "$dir" ]]; then
		unset PGTMP_DIR PGTMP_PORT PGTMP_HOST PGTMP_SOCKDIR PGTMP_CA PGTMP_DATA PGTMP_LOG PGTMP_NAME
	fi
}

pgtmp__forget() {
	local e keep=()
	for e in "${PGTMP__CLUSTERS[@]}"; do
		[[ ${e#*:} == "$1" ]] || keep+=("$e")
	done
	PGTMP__CLUSTERS=("${keep[@]}")
}

# Stops the clusters started by this (sub)shell.
pgtmp_stop_all() {
	local e
	for e in "${PGTMP__CLUSTERS[@]}"; do
		if [[ ${e%%:*} == "$BASHPID" ]]; then
			pgtmp_stop "${e#*:}"
		fi
	done
	return 0
}

# pgtmp_psql [args...]: psql -X as postgres over TCP to the current cluster.
# Connection settings come from the environment, so -d/-h/... override them.
pgtmp_psql() {
	if [[ -z ${PGTMP_DIR:-} || ! -f $PGTMP_DIR/postgres.pw ]]; then
		pgtmp__err "pgtmp_psql: no cluster (pgtmp_start first)"
		return 1
	fi
	PGPASSWORD=$(cat "$PGTMP_DIR/postgres.pw") \
		PGHOST=$PGTMP_HOST PGPORT=$PGTMP_PORT PGUSER=postgres PGDATABASE=postgres \
		PGSSLROOTCERT=${PGSSLROOTCERT:-$PGTMP_CA} \
		"$PGTMP_PGBIN/psql" -X "$@"
}
