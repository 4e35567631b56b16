#!/usr/bin/env bash
# `make deb`: $BUILD/pgward_<version>_<arch>.deb, built with dpkg-deb from the tree
# `make install` writes (PREFIX=/usr), its Depends computed by dpkg-shlibdeps from the
# binaries (Debian's library packages, with the versions their symbols need).
# The package installs files only: it creates the group pgward and the secrets on the target
# (pgward-setup, the same script `make install` runs), reloads systemd, and restarts pgwardd on
# an upgrade if it runs (pins kept: no bypass window); it neither enables nor starts it.
# `apt remove` stops pgwardd and removes the redirect (the pins); purge removes
# /etc/pgward, /var/lib/pgward, /var/log/pgward and the group.
# Environment: BUILD (build directory, default build).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$top/$BUILD
# the same inputs give the same bytes (make image reuses an image whose .deb did not change)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || echo 0)}
die() {
	echo "deb: $*" >&2
	exit 1
}
version=$("$BUILD/pgwardd" --version | awk '{print $2}')
arch=$(dpkg --print-architecture)
root=$BUILD/deb/root
out=$BUILD/pgward_${version}_${arch}.deb
rm -rf "$BUILD/deb"
mkdir -p "$root/DEBIAN"
BUILD=$BUILD DESTDIR=$root PREFIX=/usr scripts/install.sh >/dev/null

# Depends: what the binaries link, as Debian's shlibs/symbols files say
work=$BUILD/deb/shlibs
mkdir -p "$work/debian"
printf 'Source: pgward\n\nPackage: pgward\nArchitecture: any\n' >"$work/debian/control"
depends=$(cd "$work" && dpkg-shlibdeps -O "$root/usr/sbin/pgwardd" "$root/usr/bin/pgwardctl" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[[ -n $depends ]] || die "dpkg-shlibdeps found no dependencies"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: pgward
Version: $version
Architecture: $arch
Maintainer: pgward developers <pgward@localhost>
Installed-Size: $size
Depends: $depends, passwd
Recommends: postgresql-client
Section: database
Priority: optional
Description: host-level guard for agents' PostgreSQL connections
 pgwardd steers the connections that processes in chosen cgroups make to PostgreSQL
 (eBPF, no change to the agent), resolves who made each one, and decides every
 statement from its parse tree: allow, deny, hold for a person's approval, or mask
 the result's sensitive values. Every connection and decision lands in a
 hash-chained audit trail and a session recording; pgwardctl inspects and steers it
 live.
CONTROL
echo /etc/pgward/pgward.json >"$root/DEBIAN/conffiles"

cat >"$root/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	/usr/lib/pgward/pgward-setup
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload || true
		# an upgrade: the running pgwardd is replaced; its pins are kept across the restart,
		# so agents' connects are refused, never let through, until the new one takes over
		if [ -n "$2" ] && systemctl is-active -q pgwardd; then
			systemctl restart pgwardd
		fi
	fi
fi
exit 0
SH
cat >"$root/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
# remove (not upgrade): stop pgwardd and take the redirect away, or agents would stay
# fail-closed with no pgwardd to take the pins over
if [ "$1" = remove ]; then
	if [ -d /run/systemd/system ] && systemctl is-active -q pgwardd; then
		systemctl stop pgwardd || true
	fi
	/usr/lib/pgward/pgward-setup --uninstall
fi
exit 0
SH
cat >"$root/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
case "$1" in
purge)
	rm -rf /etc/pgward /var/lib/pgward /var/log/pgward /run/pgward
	# `systemctl enable pgwardd` made this; the unit it names is gone
	rm -f /etc/systemd/system/multi-user.target.wants/pgwardd.service
	# the pins, should prerm not have run (pgwardd missing)
	rm -rf /sys/fs/bpf/pgward
	if getent group pgward >/dev/null; then
		groupdel pgward || true
	fi
	;;
esac
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
exit 0
SH
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
	xargs -0 md5sum) >"$root/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
