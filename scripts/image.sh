#!/bin/sh
# Builds the container image from Debian packages only (no registry):
#   1. a base root filesystem with the runtime libraries, made from the
#      Debian archive apt already uses (mmdebstrap), imported into podman;
#   2. the image (Containerfile) around build/mailedge, built by `make`.
# Then, with `test`, runs tests/image (host networking, loopback only).
# Usage: scripts/image.sh build|test     (make image, make image-test)
# Settings this needs on a machine without systemd and with cgroup v1:
# docs/operations.md, "Container image".
set -eu
cd "$(dirname "$0")/.."
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)
IMAGE=${IMAGE:-localhost/mailedge}
BASE=localhost/mailedge-base:bookworm
work=build/image
mkdir -p "$work"

# podman's defaults do not work here: crun refuses cgroup v1 hybrid mode,
# there is no systemd, and its default 1048576 descriptors cannot be
# granted under a lower hard limit.
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
CONTAINERS_CONF=$PWD/$work/containers.conf
export CONTAINERS_CONF

if ! podman image exists "$BASE"; then
    mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk '$2 == "bookworm" { print $1; exit }')
    [ -n "$mirror" ] || { echo "image: no bookworm source in apt's lists (apt-get update?)" >&2; exit 1; }
    echo "  BASE    $BASE from $mirror"
    rm -f "$work/rootfs.tar"
    mmdebstrap --quiet --variant=essential \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --include=passwd,libcap2-bin,libmicrohttpd12,libcurl4,libc-ares2,libssl3,libsystemd0,libjson-c5,ca-certificates \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        bookworm "$work/rootfs.tar" "deb $mirror bookworm main"
    podman import --quiet "$work/rootfs.tar" "$BASE" >/dev/null
    rm -f "$work/rootfs.tar"
fi

echo "  IMAGE   $IMAGE:$VERSION"
# --network none: a build with podman's default network would create a
# bridge and iptables rules on the host. --format docker keeps HEALTHCHECK.
podman build --quiet --network none --format docker \
    --build-arg BASE="$BASE" --build-arg VERSION="$VERSION" \
    -t "$IMAGE:$VERSION" -t "$IMAGE:latest" -f Containerfile . >/dev/null

case "${1:-build}" in
    build) ;;
    test)
        MAILEDGE_IMAGE="$IMAGE:$VERSION" ${PYTHON:-/usr/bin/python3} -m pytest -q -p no:cacheprovider tests/image ;;
    *) echo "usage: scripts/image.sh build|test" >&2; exit 2 ;;
esac
