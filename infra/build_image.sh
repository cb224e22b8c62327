#!/usr/bin/env bash
# Build the project image (infra/Dockerfile) with buildah and smoke-test it; as root, from any folder.
#
#   bash infra/build_image.sh [REGISTRY]          -> REGISTRY/srgan-ray:0.1.0 (default: localhost)
#   GPU=1 bash infra/build_image.sh [REGISTRY]    -> REGISTRY/srgan-ray:0.1.0-gpu
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash infra/build_image.sh   (torch from there)
#   buildah push REGISTRY/srgan-ray:0.1.0         (REGISTRY as in the manifests of cluster/: ghcr.io/OWNER)
#
# The CPU image's base is BASE_IMAGE, by default a stand-in made here, because no registry is
# reachable from this project's build machine: Debian bookworm (debootstrap --variant=minbase) with
# Debian's Python 3.11, a user `ray` (group `users`) and a virtual environment where rayproject/ray
# keeps its Python (/home/ray/anaconda3, first on PATH), so the Dockerfile builds unchanged. Where
# Docker Hub is reachable, build on the real base: BASE_IMAGE=rayproject/ray:2.60.0-py311. GPU=1
# takes rayproject/ray:2.60.0-py311-gpu (there is no stand-in for the CUDA base).
# pip inside the build uses this machine's pip settings and wheel folders (read-only mounts), so it
# installs what scripts/install.sh installs on the host.
#
# Then infra/smoke_test.sh runs the image. Needs: buildah, and debootstrap for the stand-in.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NAME=srgan-ray:0.1.0  # the name and tag the manifests in cluster/ run (GPU workers: NAME-gpu)
STANDIN=localhost/srgan-base:bookworm
if [ "${GPU:-0}" = 1 ]; then
  NAME=$NAME-gpu
  BASE_IMAGE=${BASE_IMAGE:-rayproject/ray:2.60.0-py311-gpu}
fi
TAG=${1:-localhost}/$NAME
BASE_IMAGE=${BASE_IMAGE:-$STANDIN}
export BUILDAH_ISOLATION=chroot  # podman/runc's `run` fails on this VM's setrlimit; chroot does not

stand_in() {
  local rootfs ctr mnt
  rootfs=$(mktemp -d)
  chmod 755 "$rootfs"  # the root folder of the image: mktemp makes it 0700, which locks `ray` out
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
    http://deb.debian.org/debian > /dev/null
  chroot "$rootfs" useradd --create-home --uid 1000 --gid users --shell /bin/bash ray
  chroot "$rootfs" su ray -c "python3 -m venv /home/ray/anaconda3"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/home/ray/.cache
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  cp -a "$rootfs"/. "$mnt"/
  buildah umount "$ctr" > /dev/null
  buildah config --user ray --workingdir /home/ray --env HOME=/home/ray \
    --env PATH=/home/ray/anaconda3/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 "$ctr"
  buildah commit -q "$ctr" "$STANDIN" > /dev/null
  buildah rm "$ctr" > /dev/null
  rm -rf "$rootfs"
}

start=$(date +%s)
if [ "$BASE_IMAGE" = "$STANDIN" ] && ! buildah inspect --type image "$STANDIN" > /dev/null 2>&1; then
  echo "making the stand-in base $STANDIN (debootstrap)"
  stand_in
  echo "stand-in base: $(( $(date +%s) - start )) s"
fi
# pip in the build gets this machine's effective pip settings (files and PIP_* variables, as
# `pip config list` shows them: local indexes, wheel folders, constraints) and the files they name,
# the CA bundle included (this machine reaches PyPI through a TLS proxy that Debian's bundle lacks).
pipconf=$(mktemp)
trap 'rm -f "$pipconf"' EXIT
{ python3 -m pip config list 2> /dev/null || true; } | python3 -c '
import sys
settings = {}
for line in sys.stdin:  # e.g. global.find-links="/opt/wheels" or :env:.find-links="/opt/wheels"
    key, value = line.strip().split("=", 1)
    settings[key.split(".", 1)[1]] = value.strip("\x27\"")
print("[global]", *(f"{key} = {value}" for key, value in settings.items()), sep="\n")' > "$pipconf"
volumes=(--volume "$pipconf:/etc/pip.conf:ro")
for path in /etc/xdg/pip /opt/wheels /opt/pypi /opt/pypi-more /etc/ssl/certs/ca-certificates.crt; do
  if [ -e "$path" ]; then volumes+=(--volume "$path:$path:ro"); fi
done
# Each build leaves the last one's image untagged (about 7 GB with PyPI's CUDA torch): drop those
# first, or a machine that builds once per commit fills its disk (CI's did, after five builds).
# Only this project's (the Dockerfile's title label): other untagged images on the machine stay.
old=$(buildah images --quiet --filter dangling=true --filter label=org.opencontainers.image.title=srgan-ray)
if [ -n "$old" ]; then buildah rmi $old > /dev/null; fi
echo "free for the build (it needs about 16 GB): $(df -h --output=avail "$(buildah info --format \
  '{{.store.GraphRoot}}')" | tail -1)"
build_start=$(date +%s)
buildah bud --layers --force-rm -f "$ROOT/infra/Dockerfile" --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg TORCH_INDEX_URL="${TORCH_INDEX_URL:-}" "${volumes[@]}" -t "$TAG" "$ROOT"
echo "built $TAG in $(( $(date +%s) - build_start )) s; size: $(buildah images --format '{{.Size}}' "$TAG")"
bash "$ROOT/infra/smoke_test.sh" "$TAG"
