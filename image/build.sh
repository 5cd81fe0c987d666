#!/usr/bin/env bash
# Build the image every component runs in: with docker when a daemon answers, else with buildah
# (daemonless, chroot isolation). Prints the build time and the image size; the last line is
# one JSON object.
#
#   image/build.sh [--tag TAG] [--base BASE_IMAGE] [--variant cpu|gpu]
#
# IMAGE_ENGINE=docker|buildah forces the engine. PIP_CA names a CA bundle pip must trust behind a
# TLS-inspecting proxy (default: $PIP_CERT when that file exists); it reaches the build as a
# secret and stays out of the image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."

TAG=textclf-pipelines:latest
BASE=python:3.11-slim
VARIANT=cpu
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG=$2; shift 2 ;;
        --base) BASE=$2; shift 2 ;;
        --variant) VARIANT=$2; shift 2 ;;
        *) echo "image/build.sh: unknown argument $1 (--tag, --base, --variant)" >&2; exit 2 ;;
    esac
done
case "$VARIANT" in cpu|gpu) ;; *) echo "image/build.sh: --variant is cpu or gpu, not $VARIANT" >&2; exit 2 ;; esac

engine=${IMAGE_ENGINE:-}
if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then engine=docker; else engine=buildah; fi
fi

[ "$engine" = buildah ] && need_root "building with buildah (its storage, chroot isolation)"

PIP_CA=${PIP_CA:-${PIP_CERT:-}}
secret=()
if [ -n "$PIP_CA" ] && [ -f "$PIP_CA" ]; then secret=(--secret "id=pip_ca,src=$PIP_CA"); fi
args=(--build-arg "BASE_IMAGE=$BASE" --build-arg "VARIANT=$VARIANT" -t "$TAG" -f Dockerfile)

echo "building $TAG ($VARIANT) from $BASE with $engine"
start=$(date +%s)
case "$engine" in
    docker)
        DOCKER_BUILDKIT=1 docker build "${secret[@]}" "${args[@]}" .
        bytes=$(docker image inspect --format '{{.Size}}' "$TAG") ;;
    buildah)
        ensure_tools buildah podman  # podman only to read the size in bytes (same storage)
        if ! buildah inspect --type image "$BASE" >/dev/null 2>&1 && ! buildah pull --quiet "$BASE" >/dev/null; then
            echo "image/build.sh: cannot pull the base image $BASE. Without a registry, build on a local" \
                 "Debian 12 base: make image-base && make image BASE_IMAGE=localhost/textclf-base:bookworm" >&2
            exit 1
        fi
        buildah bud --isolation chroot --layers --pull=missing "${secret[@]}" "${args[@]}" .
        bytes=$(podman image inspect --format '{{.Size}}' "$TAG") ;;
    *) echo "image/build.sh: IMAGE_ENGINE is docker or buildah, not $engine" >&2; exit 2 ;;
esac
seconds=$(( $(date +%s) - start ))
echo "built $TAG in $seconds s: $bytes bytes"
printf '{"image": "%s", "variant": "%s", "base": "%s", "engine": "%s", "build_seconds": %d, "image_bytes": %s}\n' \
    "$TAG" "$VARIANT" "$BASE" "$engine" "$seconds" "${bytes:-null}"
