#!/usr/bin/env bash
# Build the project's images (infra/Dockerfile) with buildah and smoke-test them; as root, from any folder.
#
#   bash infra/build_image.sh [REGISTRY]          -> REGISTRY/srgan-ray:0.1.0 (target full, default: localhost)
#                                                    and REGISTRY/srgan-ray:0.1.0-serve (target serve, no torch)
#   GPU=1 bash infra/build_image.sh [REGISTRY]    -> REGISTRY/srgan-ray:0.1.0-gpu (full only)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash infra/build_image.sh   (torch from there)
#   buildah push REGISTRY/srgan-ray:0.1.0         (REGISTRY as in the manifests of cluster/: ghcr.io/OWNER)
#
# The CPU images' base is BASE_IMAGE, by default a stand-in made here, because no registry is
# reachable from this project's build machine: Debian bookworm (debootstrap --variant=minbase, from
# the Debian mirror this machine's apt uses, or DEBIAN_MIRROR) with
# Debian's Python 3.11, a user `ray` (group `users`) and a virtual environment where rayproject/ray
# keeps its Python (/home/ray/anaconda3, first on PATH), so the Dockerfile builds unchanged. Where
# Docker Hub is reachable, build on the real base: BASE_IMAGE=rayproject/ray:2.60.0-py311. GPU=1
# takes rayproject/ray:2.60.0-py311-gpu (there is no stand-in for the CUDA base).
# pip inside the build uses this machine's pip settings and wheel folders (read-only mounts), so it
# installs what scripts/install.sh installs on the host.
#
# Then infra/smoke_test.sh runs each image, and the serving image's bytes are accounted for layer by
# layer. Needs: buildah, and debootstrap for the stand-in.
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
    "$(debian_mirror)" > /dev/null
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

debian_mirror() {  # DEBIAN_MIRROR, else the first bookworm `deb` source of this machine's apt
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  python3 - << 'EOF'
import glob, os, re, sys
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    for line in open(path, errors="replace") if os.path.exists(path) else ():
        words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()  # deb [options] URI suite components
        if len(words) >= 3 and words[0] == "deb" and words[2] == "bookworm":
            sys.exit(print(words[1]))
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):  # deb822: paragraphs of fields
    for paragraph in re.split(r"\n\s*\n", open(path, errors="replace").read()):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", paragraph, re.M))
        if "deb" in fields.get("Types", "").split() and "bookworm" in fields.get("Suites", "").split() \
                and fields.get("Enabled", "yes") != "no":
            sys.exit(print(fields["URIs"].split()[0]))
sys.exit("no bookworm source in this machine's apt sources: set DEBIAN_MIRROR=URL")
EOF
}

# An image's bytes, layer by layer: the instruction that made each layer, its size as pulled
# (gzip, as a registry serves it) and as unpacked on a node, from an OCI copy of the image.
layers() {
  local oci
  oci=$(mktemp -d)
  buildah push -q "$1" "oci:$oci:image" > /dev/null
  python3 - "$oci" << 'EOF'
import json, pathlib, sys, zlib
root = pathlib.Path(sys.argv[1])
blob = lambda digest: root / "blobs" / digest.replace(":", "/")
def unpacked(layer):  # bytes of the layer's tar
    if not layer["mediaType"].endswith("gzip"):
        return layer["size"]
    d, n = zlib.decompressobj(31), 0
    with open(blob(layer["digest"]), "rb") as f:
        while chunk := f.read(1 << 20):
            n += len(d.decompress(chunk))
    return n
index = json.loads((root / "index.json").read_text())
manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
config = json.loads(blob(manifest["config"]["digest"]).read_text())
made = [h.get("created_by", "?") for h in config.get("history", []) if not h.get("empty_layer")]
made = ["?"] * (len(manifest["layers"]) - len(made)) + made  # a base's layers may carry no history
total = [0, 0]
print(f"{'pulled':>9} {'unpacked':>9}  instruction")
for layer, how in zip(manifest["layers"], made):
    sizes = layer["size"], unpacked(layer)
    total = [t + s for t, s in zip(total, sizes)]
    print(f"{sizes[0] / 1e6:6.1f} MB {sizes[1] / 1e6:6.1f} MB  {' '.join(how.split())[:100]}")
print(f"{total[0] / 1e6:6.1f} MB {total[1] / 1e6:6.1f} MB  in all")
EOF
  rm -rf "$oci"
}

# Where an image's installed packages' bytes go: the largest folders of its site-packages.
biggest() {
  local ctr
  ctr=$(buildah from -q "$1")
  buildah run "$ctr" -- sh -c 'cd "$(python -c "import sysconfig; print(sysconfig.get_paths()[\"purelib\"])")" \
    && du -sm -- * | sort -rn | head -12 | while read -r mb name; do printf "%9s MB  %s\n" "$mb" "$name"; done'
  buildah rm "$ctr" > /dev/null
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
build() {  # build TARGET TAG
  local build_start
  build_start=$(date +%s)
  buildah bud --layers --force-rm -f "$ROOT/infra/Dockerfile" --target "$1" --build-arg BASE_IMAGE="$BASE_IMAGE" \
    --build-arg TORCH_INDEX_URL="${TORCH_INDEX_URL:-}" "${volumes[@]}" -t "$2" "$ROOT"
  echo "built $2 in $(( $(date +%s) - build_start )) s; size: $(buildah images --format '{{.Size}}' "$2")"
}
build full "$TAG"
bash "$ROOT/infra/smoke_test.sh" "$TAG"
echo "== the largest packages of $TAG"; biggest "$TAG"
if [ "${GPU:-0}" != 1 ]; then
  build serve "$TAG-serve"
  bash "$ROOT/infra/smoke_test.sh" "$TAG-serve"
  echo "== the serving image's layers"; layers "$TAG-serve"
  echo "== the largest packages of $TAG-serve"; biggest "$TAG-serve"
  echo "sizes: $TAG $(buildah images --format '{{.Size}}' "$TAG"); $TAG-serve $(buildah images --format '{{.Size}}' "$TAG-serve")"
fi
