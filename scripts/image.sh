#!/usr/bin/env bash
# Build pgward's OCI image from Debian's own packages and the pgward .deb, with no registry:
#
#   scripts/image.sh BUILD/pgward_<version>_<arch>.deb        (what `make image` runs)
#
# 1. A base root filesystem: `debootstrap --variant=minbase` of Debian 12 (bookworm), signed
#    by Debian's archive keyring, with the packages the .deb declares in Depends/Pre-Depends
#    plus what the Kubernetes sidecar (deploy/kubernetes/pgward-k8s-sync) needs (bash, curl,
#    jq, ca-certificates), then brought up to date from bookworm-updates and
#    bookworm-security. It is cached as $BUILD/image/base-<key>.tar, the key a hash of the
#    suite, the mirrors, the architecture and the package list: a second build with the same
#    list downloads nothing. IMAGE_REFRESH=1 rebuilds it (to pick up newer security updates).
# 2. A copy of it gets the .deb with `dpkg -i` inside a chroot (so the package's declared
#    dependencies are what makes it install and run: pgwardd --version and ldd of every ELF
#    file of the package are checked in the chroot), the sidecar script
#    (/usr/lib/pgward/pgward-k8s-sync, from deploy/kubernetes/), then it is trimmed (apt lists and caches, docs but the copyright files, man pages,
#    locales, logs) and anything per-machine is removed (/etc/machine-id, the secrets the
#    package's postinst made, mask.key and upstream.pw: they belong to a machine, never to an
#    image; /etc/pgward keeps only the example pgward.json).
# 3. buildah makes the image from scratch with that tree as its one layer: entrypoint
#    /usr/sbin/pgwardd, command --config /etc/pgward/pgward.json, stop signal SIGTERM, no
#    exposed ports (pgwardd runs with the host's network), org.opencontainers.image.* labels;
#    committed as localhost/pgward:<version> and saved as the OCI archive
#    $BUILD/pgward-image.oci.tar (`podman load -i` or `skopeo copy oci-archive:...` elsewhere).
#    Nothing is pushed anywhere.
#
# Environment: BUILD (default build), IMAGE_NAME (default localhost/pgward), IMAGE_MIRROR and
# IMAGE_SECURITY_MIRROR (default: the machine's apt sources, else deb.debian.org),
# IMAGE_REFRESH=1. Runs as root (debootstrap, chroot, buildah's storage). Needs debootstrap,
# buildah, podman, debian-archive-keyring (scripts/deps.sh).
set -euo pipefail

SUITE=bookworm
SIDECAR_PKGS=(bash curl jq ca-certificates)
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
CACHE_FORMAT=1 # bump when the way the base is made changes

log() { printf 'image.sh: %s\n' "$*" >&2; }
die() {
	printf 'image.sh: error: %s\n' "$*" >&2
	exit 1
}

[[ $# -eq 1 ]] || die "usage: $0 PATH/pgward_<version>_<arch>.deb"
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
DEB=$(readlink -f -- "$1") || die "$1: no such file"
[[ -f $DEB ]] || die "$1: no such file (make deb first)"
BUILD=${BUILD:-build}
[[ $BUILD = /* ]] || BUILD=$top/$BUILD
IMAGE_NAME=${IMAGE_NAME:-localhost/pgward}
[[ $EUID -eq 0 ]] || die "needs root (debootstrap, chroot, the image store)"
for t in debootstrap buildah podman dpkg-deb chroot unshare sha256sum; do
	command -v "$t" >/dev/null || die "$t not found (scripts/deps.sh installs it)"
done
[[ -r $KEYRING ]] || die "$KEYRING not found (debian-archive-keyring): the base could not be verified"

t_start=$SECONDS

# --- the package ----------------------------------------------------------------------------
pkg=$(dpkg-deb -f "$DEB" Package) || die "$DEB is not a Debian package"
[[ $pkg == pgward ]] || die "$DEB is package '$pkg', not pgward"
VERSION=$(dpkg-deb -f "$DEB" Version)
ARCH=$(dpkg-deb -f "$DEB" Architecture)
[[ $VERSION =~ ^[0-9A-Za-z.+~-]+$ ]] || die "unexpected version '$VERSION' in $DEB"
[[ $ARCH == "$(dpkg --print-architecture)" ]] ||
	die "$DEB is for $ARCH; this machine builds $(dpkg --print-architecture) images only"
case $ARCH in
amd64 | arm64 | s390x | riscv64) OCI_ARCH=$ARCH ;;
ppc64el) OCI_ARCH=ppc64le ;;
i386) OCI_ARCH=386 ;;
armhf) OCI_ARCH=arm ;;
*) die "no OCI architecture known for $ARCH" ;;
esac
# the declared dependencies, the first of each alternative, no version constraints (dpkg -i
# checks those against what the base got)
deps=$({
	dpkg-deb -f "$DEB" Pre-Depends
	echo ,
	dpkg-deb -f "$DEB" Depends
} | tr '\n' ' ' | tr ',' '\n' | sed -E 's/\|.*//; s/\(.*\)//; s/:any//; s/[[:space:]]//g' | grep -v '^$' || true)
mapfile -t PKGS < <(printf '%s\n' "$deps" "${SIDECAR_PKGS[@]}" | grep -v '^$' | sort -u)
for p in "${PKGS[@]}"; do
	[[ $p =~ ^[a-z0-9][a-z0-9.+-]+$ ]] || die "unexpected dependency name '$p' in $DEB"
done

# --- mirrors --------------------------------------------------------------------------------
# The first URIs of the machine's deb822 or one-line sources naming SUITE (resp.
# SUITE-security), else Debian's own.
apt_uri() { # $1 suite
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		uri=$(awk -v s="$1" 'BEGIN { RS = ""; FS = "\n" }
			{ u = ""; ok = 0
			  for (i = 1; i <= NF; i++) {
				if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); u = a[2] }
				if ($i ~ /^Suites:/) { n = split($i, b, /[ \t]+/); for (j = 2; j <= n; j++) if (b[j] == s) ok = 1 }
			  }
			  if (ok && u != "") { print u; exit } }' "$f")
		[[ -n $uri ]] && {
			echo "$uri"
			return
		}
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		uri=$(awk -v s="$1" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; if ($2 ~ /^\[/) i++;
			if ($(i + 1) == s) { print $i; exit } }' "$f")
		[[ -n $uri ]] && {
			echo "$uri"
			return
		}
	done
}
MIRROR=${IMAGE_MIRROR:-$(apt_uri "$SUITE")}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECMIRROR=${IMAGE_SECURITY_MIRROR:-$(apt_uri "$SUITE-security")}
SECMIRROR=${SECMIRROR:-http://deb.debian.org/debian-security}

# --- up to date? ----------------------------------------------------------------------------
CACHE=$BUILD/image
mkdir -p "$CACHE"
KEY=$(printf '%s\n' "$CACHE_FORMAT" "$SUITE" "$ARCH" "$MIRROR" "$SECMIRROR" "${PKGS[@]}" |
	sha256sum | cut -c1-16)
BASE_TAR=$CACHE/base-$KEY.tar
SIDECAR=$top/deploy/kubernetes/pgward-k8s-sync
REF=$IMAGE_NAME:$VERSION
ARCHIVE=$BUILD/pgward-image.oci.tar
# what the image is made of: the base's key, the .deb, the sidecar script and this script
INPUTS=$(
	{
		echo "$KEY"
		sha256sum <"$DEB"
		sha256sum 2>/dev/null <"$SIDECAR" || echo none
		sha256sum <"$0"
	} | sha256sum | cut -c1-32
)
report() {
	local id size
	id=$(podman image inspect --format '{{.Id}}' "$REF")
	size=$(podman image inspect --format '{{.Size}}' "$REF")
	printf 'image %s (%s): %s MB unpacked; archive %s: %s\n' "$REF" "${id:0:12}" \
		"$((size / 1000000))" "$ARCHIVE" "$(du -h "$ARCHIVE" | cut -f1)"
}
if [[ ${IMAGE_REFRESH:-0} != 1 && -f $ARCHIVE ]] &&
	[[ $(podman image inspect --format '{{index .Labels "org.pgward.image.inputs"}}' "$REF" 2>/dev/null) == "$INPUTS" ]]; then
	log "$REF is up to date ($(basename "$DEB"), base $KEY)"
	report
	exit 0
fi

# --- work area and clean-up -----------------------------------------------------------------
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
CTR=
cleanup() {
	local rc=$?
	[[ -n $CTR ]] && buildah rm "$CTR" >/dev/null 2>&1
	# a chroot's mounts live in their own mount namespace (unshare), so nothing is mounted
	# here; refuse to follow anything but our own directory
	if [[ -n $WORK && -d $WORK && $WORK == "$CACHE"/work.* ]]; then
		rm -rf --one-file-system -- "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# in_root DIR CMD...: CMD chrooted into DIR with /proc mounted and services barred from
# starting, in a private mount namespace (the mount disappears with it)
in_root() {
	local root=$1
	shift
	# shellcheck disable=SC2016 # expanded by that sh
	unshare --mount --propagation private -- sh -c '
		root=$1; shift
		mount -t proc proc "$root/proc" && exec chroot "$root" /usr/bin/env -i \
			PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C \
			DEBIAN_FRONTEND=noninteractive "$@"' sh "$root" "$@"
}

# --- 1. the base, cached --------------------------------------------------------------------
if [[ -f $BASE_TAR && ${IMAGE_REFRESH:-0} != 1 ]]; then
	log "base root filesystem: cached $BASE_TAR (${PKGS[*]})"
else
	log "base root filesystem: debootstrap $SUITE minbase from $MIRROR + ${PKGS[*]}"
	b=$WORK/base
	t0=$SECONDS
	if ! debootstrap --variant=minbase --arch="$ARCH" --keyring="$KEYRING" --components=main \
		--include="$(
			IFS=,
			echo "${PKGS[*]}"
		)" "$SUITE" "$b" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
		tail -n 30 "$WORK/debootstrap.log" >&2
		[[ -f $b/debootstrap/debootstrap.log ]] && tail -n 30 "$b/debootstrap/debootstrap.log" >&2
		die "debootstrap failed"
	fi
	log "debootstrap: $((SECONDS - t0)) s; updates from $SUITE-updates and $SUITE-security"
	cat >"$b/etc/apt/sources.list" <<-EOF
		deb $MIRROR $SUITE main
		deb $MIRROR $SUITE-updates main
		deb $SECMIRROR $SUITE-security main
	EOF
	printf '#!/bin/sh\nexit 101\n' >"$b/usr/sbin/policy-rc.d"
	chmod 755 "$b/usr/sbin/policy-rc.d"
	if ! in_root "$b" sh -c 'apt-get -q update && apt-get -q -y --no-install-recommends \
		-o Dpkg::Options::=--force-confold dist-upgrade && apt-get clean' >"$WORK/upgrade.log" 2>&1; then
		tail -n 30 "$WORK/upgrade.log" >&2
		die "updating the base failed"
	fi
	grep -E '^[0-9]+ upgraded' "$WORK/upgrade.log" | sed 's/^/image.sh: /' >&2 || true
	rm -f "$b/usr/sbin/policy-rc.d"
	rm -f "$CACHE"/base-*.tar # one base at a time
	tar -C "$b" --numeric-owner --xattrs --acls -cf "$BASE_TAR.tmp" .
	mv "$BASE_TAR.tmp" "$BASE_TAR"
	rm -rf --one-file-system -- "$b"
	log "base cached as $BASE_TAR ($(du -h "$BASE_TAR" | cut -f1), $((SECONDS - t0)) s)"
fi

# --- 2. pgward installed into a copy, trimmed -----------------------------------------------
R=$WORK/rootfs
mkdir "$R"
tar -C "$R" --numeric-owner --xattrs --acls -xf "$BASE_TAR"
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 755 "$R/usr/sbin/policy-rc.d"
cp "$DEB" "$R/tmp/pgward.deb"
if ! in_root "$R" dpkg -i /tmp/pgward.deb >"$WORK/dpkg.log" 2>&1; then
	cat "$WORK/dpkg.log" >&2
	die "dpkg -i $(basename "$DEB") failed in the image (its Depends are not met by what it declares?)"
fi
rm -f "$R/tmp/pgward.deb" "$R/usr/sbin/policy-rc.d"
got=$(in_root "$R" /usr/sbin/pgwardd --version 2>&1) ||
	die "pgwardd does not run in the image: $got"
[[ $got == *" $VERSION"* || $got == *" ${VERSION%%-*}"* ]] ||
	die "pgwardd in the image says '$got', the package is $VERSION"
# every ELF file the package installed finds its libraries among what the package declares
# shellcheck disable=SC2016 # expanded in the chroot
missing=$(in_root "$R" sh -c 'dpkg -L pgward | while read -r f; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	head -c 4 "$f" | grep -q ELF || continue
	ldd "$f" 2>&1 | grep "not found" | sed "s|^|$f: |"
done') || die "checking the package's libraries failed"
[[ -z $missing ]] || die "libraries the package does not declare:"$'\n'"$missing"

# the Kubernetes sidecar at /usr/lib/pgward/pgward-k8s-sync (deploy/kubernetes/daemonset.yaml
# runs it from there; it needs bash, curl and jq, which the base has), unless the package
# ships it
if [[ -f $R/usr/lib/pgward/pgward-k8s-sync ]]; then
	log "the package ships pgward-k8s-sync"
else
	[[ -f $SIDECAR ]] || die "$SIDECAR not found (the DaemonSet's sidecar)"
	install -D -m 0755 "$SIDECAR" "$R/usr/lib/pgward/pgward-k8s-sync"
fi

# per-machine state never goes into an image: the secrets the package's set-up made (mask.key,
# upstream.pw: random, each machine its own; in a cluster they come from a Secret), the
# machine id (pgwardd names its host by it, else by the host name)
find "$R/etc/pgward" -mindepth 1 ! -name pgward.json -exec rm -rf -- {} +
rm -f "$R/etc/machine-id" "$R/var/lib/dbus/machine-id"
: >"$R/etc/resolv.conf" # the runtime provides it
rm -f "$R/etc/hostname"
# trim: apt's lists and caches, docs (the copyright files stay), man/info pages, locales,
# logs and temporary files
rm -rf "$R"/var/lib/apt/lists/* "$R"/var/cache/apt/* "$R"/var/cache/debconf/*-old \
	"$R"/var/lib/dpkg/*-old "$R"/usr/share/man "$R"/usr/share/info "$R"/usr/share/lintian \
	"$R"/usr/share/linda "$R"/usr/share/locale/* "$R"/var/log/* "$R"/tmp/* "$R"/var/tmp/* \
	"$R"/debootstrap
find "$R/usr/share/doc" -mindepth 1 \( -type f -o -type l \) ! -name copyright -delete
find "$R/usr/share/doc" -mindepth 1 -type d -empty -delete
mkdir -p "$R/var/log/pgward" "$R/var/lib/pgward/recordings" "$R/run/pgward"
chmod 0700 "$R/var/log/pgward" "$R/var/lib/pgward"
left=$(find "$R/etc/pgward" -mindepth 1 ! -name pgward.json)
[[ -z $left ]] || die "per-machine files still in the image: $left"
log "root filesystem: $(du -sh --one-file-system "$R" | cut -f1)"

# --- 3. the image ---------------------------------------------------------------------------
old_id=$(podman image inspect --format '{{.Id}}' "$REF" 2>/dev/null || true)
CTR=$(buildah from --name "pgward-image-build-$$" scratch)
mnt=$(buildah mount "$CTR")
tar -C "$R" --numeric-owner --xattrs --acls -cf - . | tar -C "$mnt" --numeric-owner --xattrs --acls -xf -
buildah umount "$CTR" >/dev/null
revision=$(git -C "$top" rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
	revision=$revision-dirty
fi
buildah config \
	--os linux --arch "$OCI_ARCH" \
	--entrypoint '["/usr/sbin/pgwardd"]' \
	--cmd '["--config", "/etc/pgward/pgward.json"]' \
	--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	--workingdir / --user 0:0 --stop-signal SIGTERM \
	--label org.opencontainers.image.title=pgward \
	--label "org.opencontainers.image.description=pgward: eBPF-steered PostgreSQL guard (pgwardd, pgwardctl) on Debian $SUITE" \
	--label "org.opencontainers.image.version=$VERSION" \
	--label "org.opencontainers.image.revision=$revision" \
	--label "org.opencontainers.image.created=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--label "org.opencontainers.image.base.name=debian:$SUITE (debootstrap minbase)" \
	--label "org.opencontainers.image.ref.name=$VERSION" \
	--label "org.pgward.image.inputs=$INPUTS" \
	"$CTR"
buildah commit --quiet --format oci --rm "$CTR" "$REF" >/dev/null
CTR=
new_id=$(podman image inspect --format '{{.Id}}' "$REF")
# the image this one replaces, when nothing else names or uses it
if [[ -n $old_id && $old_id != "$new_id" ]]; then
	podman rmi "$old_id" >/dev/null 2>&1 || true
fi
rm -f "$ARCHIVE"
podman save -q --format oci-archive -o "$ARCHIVE.tmp" "$REF" >/dev/null
mv "$ARCHIVE.tmp" "$ARCHIVE"
log "done in $((SECONDS - t_start)) s"
report
