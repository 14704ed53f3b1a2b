#!/usr/bin/env bash
# Make a base for the images available to the container engine (make container-host runs it after
# container_host.sh). The Dockerfiles build FROM ${BASE}, by default the official
# python:3.11.14-slim-bookworm pinned by digest (the `ARG BASE=` line of images/*/Dockerfile).
#
# With a Docker engine that can pull, pull that pinned reference: the builds use it as it is.
# Where no image registry is reachable (CI VMs reach only the Debian and PyPI mirrors) build a
# stand-in under its OWN name, $STAND_IN (never the official name: a digest-pinned FROM would not
# match it anyway, and a release must never be built from it by accident), and print
# `BASE_IMAGE=$STAND_IN` as the last line: `make images BASE_IMAGE=...` passes it as
# --build-arg BASE (the cluster rehearsal does). The stand-in is Debian bookworm
# (debootstrap --variant=minbase from this machine's Debian mirror) with Debian's python3 3.11,
# venv and pip, no compiler, like the slim image. Then:
#   - this machine's CA bundle goes in (and its local CAs, so update-ca-certificates keeps them):
#     PyPI may be reached through a TLS-intercepting proxy whose CA only the host bundle holds;
#   - /usr/lib/python3.11/EXTERNALLY-MANAGED goes (PEP 668: the official image's pip installs
#     system-wide, and so do the Dockerfiles);
#   - `pip` and `python` are on PATH, as in the official image.
# Debian's Python is 3.11.2, not 3.11.14, and lives in /usr; the Dockerfiles do not depend on
# either. Idempotent: does nothing when the image exists. Needs root (debootstrap, chroot).
set -euo pipefail

ROOT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# the pinned official base, from the Dockerfiles' build argument default
OFFICIAL=$(sed -n 's/^ARG BASE=//p' "$ROOT_DIR/images/serving/Dockerfile" | head -n 1)
STAND_IN=${BASE_STAND_IN:-localhost/mlpipe/python-stand-in:3.11-bookworm}
# the name stand-ins had before the base was pinned by digest (re-tagged, not rebuilt)
LEGACY=docker.io/library/python:3.11.14-slim-bookworm
LABEL_KEY=io.mlpipe.base-stand-in
SUITE=bookworm
PACKAGES="python3 python3-venv python3-pip python-is-python3 ca-certificates"

say() { echo "base-image: $*"; }

docker_engine() { # a real Docker engine, not podman's Docker-compatible API behind DOCKER_HOST
	command -v docker >/dev/null 2>&1 || return 1
	local components
	components=$(timeout 20 docker version --format '{{range .Server.Components}}{{.Name}};{{end}}' \
		2>/dev/null) || return 1
	case "$components" in *[Pp]odman*) return 1 ;; esac
}
if docker_engine; then ENGINE=docker; else ENGINE=podman; fi

[ -n "$OFFICIAL" ] || { echo "base-image: no ARG BASE= in images/serving/Dockerfile" >&2; exit 1; }
use_stand_in() { # the last line: what `make images BASE_IMAGE=...` needs
	say "builds must use it: make images BASE_IMAGE=$STAND_IN"
	echo "BASE_IMAGE=$STAND_IN"
	exit 0
}

if $ENGINE image inspect "$OFFICIAL" >/dev/null 2>&1; then
	say "$OFFICIAL is present ($ENGINE): nothing to do"
	exit 0
fi
if [ "$ENGINE" = docker ]; then
	say "docker pull $OFFICIAL"
	if docker pull "$OFFICIAL"; then exit 0; fi
	say "the pull failed: using a local stand-in instead"
fi
if $ENGINE image inspect "$STAND_IN" >/dev/null 2>&1; then
	say "stand-in $STAND_IN is present ($ENGINE)"
	use_stand_in
fi
legacy_label=$($ENGINE image inspect --format "{{index .Config.Labels \"$LABEL_KEY\"}}" "$LEGACY" \
	2>/dev/null || true)
if [ -n "$legacy_label" ] && [ "$legacy_label" != "<no value>" ]; then
	say "an earlier stand-in is named $LEGACY: tagging it $STAND_IN"
	$ENGINE tag "$LEGACY" "$STAND_IN"
	use_stand_in
fi

if [ "$(id -u)" != 0 ]; then
	echo "base-image: must run as root to build the stand-in (debootstrap, chroot)" >&2
	exit 1
fi
command -v debootstrap >/dev/null 2>&1 || {
	echo "base-image: debootstrap is missing (run tests/rehearsal/container_host.sh first)" >&2
	exit 1
}

# This machine's Debian mirror for the suite (and its security mirror), from one-line
# sources.list files or deb822 .sources files; deb.debian.org when none is found.
mirrors() { # prints "URI SUITE" for every enabled deb entry
	local file
	for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$file" ] || continue
		awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } print $i, $(i + 1) }' \
			"$file"
	done
	for file in /etc/apt/sources.list.d/*.sources; do
		[ -f "$file" ] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
			{ types = uris = suites = ""; enabled = 1
			  for (i = 1; i <= NF; i++) {
				if ($i ~ /^Types:/) types = $i
				if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
				if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
				if ($i ~ /^Enabled:[ \t]*no/) enabled = 0 }
			  if (enabled && types ~ /[ \t]deb([ \t]|$)/) {
				split(uris, u, /[ \t]+/); n = split(suites, s, /[ \t]+/)
				for (j = 1; j <= n; j++) print u[1], s[j] } }' "$file"
	done
}
MIRROR=$(mirrors | awk -v s="$SUITE" '$2 == s { print $1; exit }')
SECURITY=$(mirrors | awk -v s="$SUITE-security" '$2 == s { print $1; exit }')
MIRROR=${MIRROR:-http://deb.debian.org/debian}
MIRROR=${MIRROR%/}
say "Debian mirror: $MIRROR${SECURITY:+ (security: $SECURITY)}"

WORK=$(mktemp -d /var/tmp/mlpipe-base.XXXXXX)
ROOT=$WORK/rootfs
cleanup() {
	mountpoint -q "$ROOT/proc" 2>/dev/null && umount "$ROOT/proc"
	rm -rf "$WORK"
}
trap cleanup EXIT

start=$(date +%s)
say "debootstrap --variant=minbase $SUITE $ROOT $MIRROR"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
	tail -n 30 "$WORK/debootstrap.log" >&2
	exit 1
}

# like debian:bookworm-slim: no documentation, manual pages or translations
cat >"$ROOT/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
DPKG
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$ROOT"/usr/share/{man,info,groff,lintian,linda,locale}/*

{
	echo "deb $MIRROR $SUITE main"
	echo "deb $MIRROR $SUITE-updates main"
	[ -z "$SECURITY" ] || echo "deb ${SECURITY%/} $SUITE-security main"
} >"$ROOT/etc/apt/sources.list"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
say "chroot: apt-get install $PACKAGES"
chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
	sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $PACKAGES \
		&& apt-get clean" >"$WORK/apt.log" 2>&1 || {
	tail -n 30 "$WORK/apt.log" >&2
	exit 1
}
umount "$ROOT/proc"

# this machine's CAs: local ones (kept by update-ca-certificates) and the whole bundle
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
	cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
fi
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
rm -f "$ROOT"/usr/lib/python3*/EXTERNALLY-MANAGED
[ -e "$ROOT/usr/bin/pip" ] || ln -s pip3 "$ROOT/usr/bin/pip"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/log/*.log \
	"$ROOT"/tmp/* "$ROOT"/root/.cache
: >"$ROOT/etc/resolv.conf"
version=$(chroot "$ROOT" python --version 2>&1)
pip_version=$(chroot "$ROOT" pip --version 2>&1 | cut -d' ' -f1-2)
say "stand-in has $version, $pip_version ($(du -sh "$ROOT" | cut -f1))"

say "importing it as $STAND_IN ($ENGINE)"
quiet=()
[ "$ENGINE" != podman ] || quiet=(--quiet)
tar -C "$ROOT" -c . | $ENGINE import "${quiet[@]}" \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV LANG=C.UTF-8' \
	--change "LABEL $LABEL_KEY=\"Debian bookworm python3 (debootstrap minbase)\"" \
	--change 'CMD ["python3"]' \
	- "$STAND_IN" >/dev/null
say "done in $(($(date +%s) - start)) s"
use_stand_in
