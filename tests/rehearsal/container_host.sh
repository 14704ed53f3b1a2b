#!/usr/bin/env bash
# Prepare this machine to build and run the project's images (make container-host runs it).
#
# With a working Docker engine (a laptop) there is nothing to do. Otherwise (CI: a fresh Debian
# VM, root, no Docker engine) set up podman, rootful, with the Docker-compatible API on
# /run/podman/podman.sock, so `docker` clients (docker-py, kfp's DockerRunner) and `make images
# DOCKER=podman` work. Two adjustments make crun run containers on such VMs:
#   1. The VM withholds CAP_SYS_RESOURCE, so crun fails with `setrlimit RLIMIT_NPROC: Operation not
#      permitted` even for unchanged limits. podman gets an OCI runtime wrapper named `crun` that
#      deletes process.rlimits from the bundle's config.json (and from `exec --process FILE`)
#      before exec'ing /usr/bin/crun; a containers.conf drop-in makes it podman's crun, for the
#      CLI, builds and the API service alike.
#   2. crun refuses "cgroups in hybrid mode" while the cgroup2 mount /sys/fs/cgroup/unified holds
#      the hugetlb controller: mounting hugetlb as a cgroup v1 hierarchy moves it there.
# Idempotent; prints what it does. Last lines: engine=<docker|podman> and, for podman,
# DOCKER_HOST=unix:///run/podman/podman.sock (callers may `eval` those two lines).
set -euo pipefail

SOCKET=/run/podman/podman.sock
STATE_DIR=/run/mlpipe-podman
WRAPPER_DIR=/usr/local/lib/mlpipe-oci
WRAPPER=$WRAPPER_DIR/crun
DROP_IN=/etc/containers/containers.conf.d/50-mlpipe-oci-runtime.conf
# podman's own and recommended packages (netavark + iptables: the default bridge network of
# `podman run`), debootstrap for the base image stand-in, jq for the runtime wrapper
PACKAGES=(podman buildah crun conmon netavark aardvark-dns iptables fuse-overlayfs uidmap
	slirp4netns catatonit debootstrap jq curl)

say() { echo "container-host: $*"; }

if [ "$(id -u)" != 0 ]; then
	echo "container-host: must run as root (rootful podman; it writes /etc and mounts cgroups)" >&2
	exit 1
fi

# A real Docker engine (not podman's Docker-compatible API behind DOCKER_HOST): nothing to do.
docker_engine() {
	command -v docker >/dev/null 2>&1 || return 1
	local components
	components=$(timeout 20 docker version --format '{{range .Server.Components}}{{.Name}};{{end}}' \
		2>/dev/null) || return 1
	case "$components" in *[Pp]odman*) return 1 ;; esac
	timeout 20 docker info >/dev/null 2>&1
}
if docker_engine; then
	say "a Docker engine answers: nothing to set up"
	echo "engine=docker"
	exit 0
fi

# ---- packages
missing=()
for package in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
		|| missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
else
	say "packages present: ${PACKAGES[*]}"
fi

# ---- the OCI runtime wrapper and the drop-in that makes it podman's crun
changed=0
write_if_changed() { # path mode: content on stdin
	local path=$1 mode=$2 tmp
	tmp=$(mktemp)
	cat >"$tmp"
	if [ -f "$path" ] && cmp -s "$tmp" "$path"; then
		rm -f "$tmp"
		say "$path is up to date"
	else
		mkdir -p "$(dirname "$path")"
		install -m "$mode" "$tmp" "$path"
		rm -f "$tmp"
		changed=1
		say "wrote $path"
	fi
}

write_if_changed "$WRAPPER" 0755 <<'WRAPPER'
#!/bin/sh
# OCI runtime wrapper (written by tests/rehearsal/container_host.sh): this VM withholds
# CAP_SYS_RESOURCE, so crun's setrlimit fails even for unchanged limits. Delete process.rlimits
# from the bundle's config.json (create/run) or from the process file (exec --process FILE), then
# exec the real crun with the same arguments. Named `crun` so podman treats it as crun.
set -e
strip() { # a JSON file; $2: jq path of the rlimits
	[ -f "$1" ] || return 0
	jq -e "$2 // empty" "$1" >/dev/null 2>&1 || return 0
	tmp="$1.norlimits.$$"
	jq -c "del($2)" "$1" >"$tmp" && cat "$tmp" >"$1"
	rm -f "$tmp"
}
command=""
bundle=""
process=""
previous=""
for arg in "$@"; do
	case "$previous" in
	--bundle | -b) bundle=$arg ;;
	--process | -p) process=$arg ;;
	esac
	case "$arg" in
	--bundle=*) bundle=${arg#--bundle=} ;;
	--process=*) process=${arg#--process=} ;;
	create | run | exec) [ -n "$command" ] || command=$arg ;;
	esac
	previous=$arg
done
case "$command" in
create | run) strip "${bundle:-.}/config.json" .process.rlimits ;;
exec) [ -z "$process" ] || strip "$process" .rlimits ;;
esac
exec /usr/bin/crun "$@"
WRAPPER

write_if_changed "$DROP_IN" 0644 <<CONF
# Written by tests/rehearsal/container_host.sh: podman's crun is a wrapper that drops
# process.rlimits (this VM withholds CAP_SYS_RESOURCE). Read by the podman CLI, podman build and
# podman system service.
[engine]
runtime = "crun"

[engine.runtimes]
crun = ["$WRAPPER"]
CONF

# ---- cgroups: crun refuses hybrid mode while cgroup2 holds hugetlb
if [ -f /sys/fs/cgroup/unified/cgroup.controllers ] \
	&& grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers; then
	say "moving the hugetlb controller from cgroup2 (/sys/fs/cgroup/unified) to cgroup v1"
	mkdir -p /sys/fs/cgroup/hugetlb
	mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
else
	say "cgroups: nothing to move"
fi

# ---- the Docker-compatible API service
answers() { curl -sf --max-time 5 --unix-socket "$SOCKET" http://d/_ping >/dev/null 2>&1; }
mkdir -p "$STATE_DIR"
if [ "$changed" = 1 ] && [ -f "$STATE_DIR/service.pid" ]; then
	pid=$(cat "$STATE_DIR/service.pid")
	if kill -0 "$pid" 2>/dev/null; then
		say "configuration changed: stopping podman system service (pid $pid)"
		kill "$pid"
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
fi
if answers; then
	say "podman system service already answers on $SOCKET"
else
	say "starting podman system service on $SOCKET (log $STATE_DIR/service.log)"
	mkdir -p "$(dirname "$SOCKET")"
	rm -f "$SOCKET"
	setsid nohup podman system service --time=0 "unix://$SOCKET" \
		>"$STATE_DIR/service.log" 2>&1 </dev/null &
	echo $! >"$STATE_DIR/service.pid"
	for _ in $(seq 100); do
		answers && break
		sleep 0.2
	done
	if ! answers; then
		echo "container-host: podman system service does not answer; its log:" >&2
		cat "$STATE_DIR/service.log" >&2
		exit 1
	fi
	say "podman system service answers (pid $(cat "$STATE_DIR/service.pid"))"
fi

echo "engine=podman"
echo "DOCKER_HOST=unix://$SOCKET"
