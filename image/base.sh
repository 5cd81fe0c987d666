#!/usr/bin/env bash
# A local Debian 12 base image for machines that cannot pull python:3.11-slim (no Docker Hub):
# debootstrap's minbase plus python3 (3.11, as in python:3.11-slim), python3-venv (Debian's
# python3 has no pip and is externally managed, so the image builds its own venv) and
# ca-certificates, packed with tar and imported with podman into the storage buildah reads.
#
#   image/base.sh [IMAGE] [MIRROR]     default localhost/textclf-base:bookworm, deb.debian.org
#
# Created once: an existing IMAGE is kept (IMAGE_BASE_REBUILD=1 makes a new one).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

IMAGE=${1:-localhost/textclf-base:bookworm}
MIRROR=${2:-http://deb.debian.org/debian}
SUITE=bookworm

need_root "debootstrap (a chroot) with podman import"
ensure_tools debootstrap podman

if podman image exists "$IMAGE" && [ "${IMAGE_BASE_REBUILD:-0}" != 1 ]; then
    echo "base image $IMAGE exists; kept (IMAGE_BASE_REBUILD=1 rebuilds it)"
    exit 0
fi

root=$(mktemp -d /var/tmp/textclf-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
start=$(date +%s)
echo "debootstrap --variant=minbase $SUITE from $MIRROR into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates "$SUITE" "$root" "$MIRROR" \
    > "$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; echo "image/base.sh: debootstrap failed (log $root.log)" >&2; exit 1; }
rm -f "$root.log"
# What a container never needs: downloaded packages, package lists, docs and locales.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
python_version=$(chroot "$root" python3 -c 'import platform; print(platform.python_version())')
tar --numeric-owner -C "$root" -c . \
    | podman import --quiet --change 'CMD ["/bin/bash"]' --message "debootstrap minbase $SUITE + python3 python3-venv ca-certificates" - "$IMAGE" >/dev/null
echo "base image $IMAGE: Python $python_version, $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes," \
     "$(( $(date +%s) - start )) s"
