#!/usr/bin/env bash
# `make install` and `make uninstall`: pgward's files, and (installing on this host, DESTDIR
# empty) its host setup. The .deb is built from the same tree (scripts/deb.sh).
#   scripts/install.sh              install into $DESTDIR$PREFIX (and /etc, /var)
#   scripts/install.sh --uninstall  remove the redirect (pins) and the installed files;
#                                   PURGE=1: also the configuration, state, logs and group
# Environment: BUILD (build directory, default build), DESTDIR, PREFIX (/usr/local),
# SYSCONFDIR (/etc), LOCALSTATEDIR (/var), UNITDIR ($PREFIX/lib/systemd/system).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
LOCALSTATEDIR=${LOCALSTATEDIR:-/var}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
D=$DESTDIR
die() {
	echo "install: $*" >&2
	exit 1
}

# every installed file, one per line: MODE SOURCE DESTINATION (absolute, without DESTDIR)
manifest() {
	echo "0755 $BUILD/pgwardd $PREFIX/sbin/pgwardd"
	echo "0755 $BUILD/pgwardctl $PREFIX/bin/pgwardctl"
	echo "0755 deploy/pgward-setup $PREFIX/lib/pgward/pgward-setup"
	# the DaemonSet's sidecar (docs/deploy.md)
	echo "0755 deploy/kubernetes/pgward-k8s-sync $PREFIX/lib/pgward/pgward-k8s-sync"
	echo "0644 @unit $UNITDIR/pgwardd.service"
	echo "0644 deploy/systemd/pgward.slice $UNITDIR/pgward.slice"
	echo "0644 @man docs/pgwardd.8 $PREFIX/share/man/man8/pgwardd.8.gz"
	echo "0644 @man docs/pgwardctl.8 $PREFIX/share/man/man8/pgwardctl.8.gz"
	echo "0644 @man docs/pgward.json.5 $PREFIX/share/man/man5/pgward.json.5.gz"
	echo "0644 deploy/bash-completion/pgwardctl $PREFIX/share/bash-completion/completions/pgwardctl"
	echo "0644 README.md $PREFIX/share/doc/pgward/README.md"
	local f
	for f in docs/*.md examples/*; do
		echo "0644 $f $PREFIX/share/doc/pgward/$f"
	done
	echo "0644 deploy/pgward.json $PREFIX/share/doc/pgward/examples/pgward.json"
}

unit() {
	sed -e "s#@SBINDIR@#$PREFIX/sbin#g" -e "s#@SYSCONFDIR@#$SYSCONFDIR#g" \
		deploy/systemd/pgwardd.service.in
}

install_files() {
	[[ -x $BUILD/pgwardd && -x $BUILD/pgwardctl ]] || die "$BUILD/pgwardd or pgwardctl missing (make)"
	local mode src dst extra
	while read -r mode src dst extra; do
		if [[ $src == @man ]]; then
			src=$dst dst=$extra
			[[ -f $src ]] || die "$src missing"
			install -d -m 0755 "$D$(dirname "$dst")"
			gzip -9n -c "$src" >"$D$dst"
			chmod "$mode" "$D$dst"
		elif [[ $src == @unit ]]; then
			install -d -m 0755 "$D$(dirname "$dst")"
			unit >"$D$dst"
			chmod "$mode" "$D$dst"
		else
			install -D -m "$mode" "$src" "$D$dst"
		fi
	done < <(manifest)
	# the configuration: the example, never over a file that is there
	install -d -m 0700 "$D$SYSCONFDIR/pgward"
	if [[ -e $D$SYSCONFDIR/pgward/pgward.json ]]; then
		echo "install: $D$SYSCONFDIR/pgward/pgward.json exists: left as it is (the example is" \
			"$PREFIX/share/doc/pgward/examples/pgward.json)"
	else
		install -m 0600 deploy/pgward.json "$D$SYSCONFDIR/pgward/pgward.json"
	fi
	install -d -m 0700 "$D$LOCALSTATEDIR/lib/pgward" "$D$LOCALSTATEDIR/lib/pgward/recordings" \
		"$D$LOCALSTATEDIR/log/pgward"
	if [[ -z $D ]]; then
		# this host: the group and the secrets, made here and never shipped
		SYSCONFDIR=$SYSCONFDIR LOCALSTATEDIR=$LOCALSTATEDIR SBINDIR=$PREFIX/sbin \
			"$PREFIX/lib/pgward/pgward-setup"
		if [[ -d /run/systemd/system ]]; then
			systemctl daemon-reload
		fi
		echo "install: done. Next: review $SYSCONFDIR/pgward/pgward.json," \
			"'pgwardctl config check $SYSCONFDIR/pgward/pgward.json'," \
			"then 'systemctl enable --now pgwardd' (see man pgwardd)"
	fi
}

uninstall_files() {
	local setup=$D$PREFIX/lib/pgward/pgward-setup
	if [[ -z $D && -d /run/systemd/system ]] && systemctl is-active -q pgwardd 2>/dev/null; then
		systemctl stop pgwardd
	fi
	if [[ -z $D && -x $setup ]]; then
		SYSCONFDIR=$SYSCONFDIR LOCALSTATEDIR=$LOCALSTATEDIR SBINDIR=$PREFIX/sbin \
			"$setup" "$([[ ${PURGE:-0} == 1 ]] && echo --purge || echo --uninstall)"
	fi
	local mode src dst extra
	while read -r mode src dst extra; do
		[[ $src == @man ]] && dst=$extra
		rm -f "$D$dst"
	done < <(manifest)
	rmdir "$D$PREFIX/lib/pgward" "$D$PREFIX/share/doc/pgward/docs" \
		"$D$PREFIX/share/doc/pgward/examples" "$D$PREFIX/share/doc/pgward" 2>/dev/null || true
	[[ -z $D && -d /run/systemd/system ]] && systemctl daemon-reload
	echo "install: pgward's files removed$([[ ${PURGE:-0} == 1 ]] || echo "; $SYSCONFDIR/pgward," \
		"$LOCALSTATEDIR/lib/pgward and $LOCALSTATEDIR/log/pgward kept (PURGE=1 removes them)")"
}

case ${1:-} in
"") install_files ;;
--uninstall) uninstall_files ;;
--manifest) manifest | awk '{print ($2 == "@man") ? $4 : $3}' ;;
*) die "usage: scripts/install.sh [--uninstall | --manifest]" ;;
esac
