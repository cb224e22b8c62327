#!/usr/bin/env bash
# Smoke test of a built image (infra/build_image.sh runs it): the CLI, an offline upscale and (the
# full image) an evaluate of the shipped Set5 inside the image, or (the serving image) that torch
# cannot be imported; then `srgan serve` started in a container, and from outside it /healthz, the
# web page, a POST /v1/upscale of each shipped model and one with alpha (the full image dials it,
# the serving image answers 400); the user is not root and no pip cache or compiler is left in the
# image. Prints the time from start to a healthy endpoint.
#
#   bash infra/smoke_test.sh [TAG]
set -euo pipefail
TAG=${1:-localhost/srgan-ray:0.1.0}
PORT=${PORT:-8765}
export BUILDAH_ISOLATION=chroot
BIRD=srgan/assets/benchmarks/Set5/LR_bicubic/X4/bird.png
ctr=$(buildah from -q "$TAG")
work=$(mktemp -d)  # the serve log and the answer, on the host
serve_pid=""
descendants() { local child; for child in $(pgrep -P "$1"); do echo "$child"; descendants "$child"; done; }
cleanup() {  # `srgan serve` and the Ray it started: every process whose root is the serve container's
  local pid root="" pids=""  # (chroot isolation has no pid namespace: `ray stop` would stop the host's Ray)
  if [ -n "$serve_pid" ]; then
    for pid in $(descendants "$serve_pid"); do  # buildah chroots it into a folder under /var/tmp
      root=$(readlink "/proc/$pid/root" 2> /dev/null || true)
      [ -n "$root" ] && [ "$root" != / ] && break
      root=""
    done
    for proc in /proc/[0-9]*; do
      [ -n "$root" ] && [ "$(readlink "$proc/root" 2> /dev/null)" = "$root" ] && pids="$pids ${proc#/proc/}"
    done
    kill $pids "$serve_pid" 2> /dev/null || true
    sleep 3
    kill -9 $pids "$serve_pid" 2> /dev/null || true
  fi
  buildah rm "$ctr" > /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
run() { buildah run "$ctr" -- "$@"; }

echo "== user: $(run whoami)"
[ "$(run id -u)" != 0 ] || { echo "the image runs as root"; exit 1; }
run sh -c 'for c in gcc cc g++ make; do command -v $c && exit 1; done; [ ! -d ~/.cache/pip ]' \
  || { echo "a compiler or pip's cache is left in the image"; exit 1; }
echo "== srgan --help"; run srgan --help | head -3
echo "== srgan upscale"; run srgan upscale "$BIRD" -o /tmp/smoke --overwrite
if run python -c "import torch" 2> /dev/null; then
  slim=0
  echo "== srgan evaluate (the shipped Set5)"; run srgan evaluate --model default --metrics psnr,ssim
else
  slim=1
  echo "== the serving image: no torch (import torch fails)"
fi
echo "== srgan serve on 127.0.0.1:$PORT"
start=$(date +%s%N)
buildah run "$ctr" -- srgan serve --port "$PORT" > "$work/serve.log" 2>&1 &
serve_pid=$!
until curl -fs "http://127.0.0.1:$PORT/readyz" > /dev/null; do
  if ! kill -0 "$serve_pid" 2> /dev/null || [ $(( $(date +%s%N) - start )) -gt 300000000000 ]; then
    tail -30 "$work/serve.log"; echo "srgan serve did not get ready in 300 s"; exit 1
  fi
  sleep 0.5
done
echo "healthy (readyz) after $(( ($(date +%s%N) - start) / 1000000 )) ms; /healthz: $(curl -fs "http://127.0.0.1:$PORT/healthz")"
# the page into a file first: `curl | grep -q` fails when grep stops reading before curl is done (pipefail)
curl -fs "http://127.0.0.1:$PORT/" -o "$work/page.html" && grep -q "<title>" "$work/page.html" \
  || { echo "GET / is not the web page"; exit 1; }
echo "GET /: the web page"
run cat "$BIRD" > "$work/bird.png"
post() {  # post QUERY: the answer's status code; the body in $work/answer
  curl -s --data-binary @"$work/bird.png" -H 'content-type: image/png' -o "$work/answer" -w '%{http_code}' \
    "http://127.0.0.1:$PORT/v1/upscale?format=png&$1"
}
for model in $(run python -c 'from srgan import SHIPPED_MODELS; print(*SHIPPED_MODELS)'); do
  code=$(post "model=$model")
  [ "$code" = 200 ] || { echo "POST /v1/upscale model=$model: $code $(head -c 300 "$work/answer")"; exit 1; }
  python3 -c "import struct; d = open('$work/answer', 'rb').read(24); print('POST /v1/upscale model=$model: %dx%d PNG' % struct.unpack('>II', d[16:24]))"
done
code=$(post "model=default&alpha=0.5")
expected=$([ "$slim" = 1 ] && echo 400 || echo 200)
[ "$code" = "$expected" ] || { echo "POST alpha=0.5: $code, expected $expected: $(head -c 300 "$work/answer")"; exit 1; }
echo "POST /v1/upscale alpha=0.5: $code$([ "$slim" = 1 ] && echo ": $(head -c 200 "$work/answer")")"
echo "smoke test passed"
