#!/usr/bin/env bash
# Smoke test of a built image (infra/build_image.sh runs it): the CLI, an offline upscale and an
# evaluate of the shipped Set5 inside the image, then `srgan serve` started in a container and
# /healthz and one POST /v1/upscale answered from outside it; the user is not root and no pip cache
# or compiler is left in the image. Prints the time from start to a healthy endpoint.
#
#   bash infra/smoke_test.sh [TAG]
set -euo pipefail
TAG=${1:-localhost/srgan-ray:0.1.0}
PORT=${PORT:-8765}
export BUILDAH_ISOLATION=chroot
BIRD=srgan/assets/benchmarks/Set5/LR_bicubic/X4/bird.png
ctr=$(buildah from -q "$TAG")
root=$(buildah mount "$ctr")
in_container() {  # the pids whose root is this container's (chroot isolation: no pid namespace)
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/root" 2> /dev/null)" = "$root" ] && echo "${proc#/proc/}"
  done
  return 0
}
cleanup() {  # `srgan serve` and the Ray it started inside the container; no other Ray on the host
  kill $(in_container) 2> /dev/null || true
  sleep 3
  kill -9 $(in_container) 2> /dev/null || true
  buildah umount "$ctr" > /dev/null
  buildah rm "$ctr" > /dev/null
}
trap cleanup EXIT
run() { buildah run "$ctr" -- "$@"; }

echo "== user: $(run whoami)"
[ "$(run id -u)" != 0 ] || { echo "the image runs as root"; exit 1; }
run sh -c 'for c in gcc cc g++ make; do command -v $c && exit 1; done; [ ! -d ~/.cache/pip ]' \
  || { echo "a compiler or pip's cache is left in the image"; exit 1; }
echo "== srgan --help"; run srgan --help | head -3
echo "== srgan upscale"; run srgan upscale "$BIRD" -o /tmp/smoke --overwrite
echo "== srgan evaluate (the shipped Set5)"; run srgan evaluate --model default --metrics psnr,ssim
echo "== srgan serve on 127.0.0.1:$PORT"
start=$(date +%s%N)
buildah run "$ctr" -- srgan serve --port "$PORT" > /tmp/srgan-smoke-serve.log 2>&1 &
serve_pid=$!
until curl -fs "http://127.0.0.1:$PORT/readyz" > /dev/null; do
  if ! kill -0 "$serve_pid" 2> /dev/null || [ $(( $(date +%s%N) - start )) -gt 300000000000 ]; then
    tail -30 /tmp/srgan-smoke-serve.log; echo "srgan serve did not get ready in 300 s"; exit 1
  fi
  sleep 0.5
done
echo "healthy (readyz) after $(( ($(date +%s%N) - start) / 1000000 )) ms; /healthz: $(curl -fs "http://127.0.0.1:$PORT/healthz")"
run cat "$BIRD" | curl -fs --data-binary @- -H 'content-type: image/png' \
  "http://127.0.0.1:$PORT/v1/upscale?format=png" -o /tmp/srgan-smoke-x4.png
python3 -c "import struct; d = open('/tmp/srgan-smoke-x4.png', 'rb').read(24); print('POST /v1/upscale: %dx%d PNG' % struct.unpack('>II', d[16:24]))"
echo "smoke test passed"
