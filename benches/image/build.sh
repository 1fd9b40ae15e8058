#!/usr/bin/env bash
# Builds the benchmarks' agent image on the engine DOCKER_HOST names (if it lacks it) and
# prints its tag: FROM scratch, Debian's busybox-static with its applet links made here (no
# RUN step, so the build needs no network and no container) and the bench `claude`. The tag
# carries a hash of the three, so a changed stand-in makes a new image.
#
#   IMAGE=$(benches/image/build.sh)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUSYBOX=$(command -v busybox || true)
[[ -n $BUSYBOX ]] || { echo "error: busybox-static is needed (apt-get install busybox-static)" >&2; exit 1; }
IMAGE=claunch-bench/agent:$(cat "$HERE/claude" "$HERE/Dockerfile" "$BUSYBOX" | sha256sum | cut -c1-12)
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  ctx=$(mktemp -d /tmp/claunch-bench-image.XXXXXX)
  trap 'rm -rf "$ctx"' EXIT
  mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/etc" "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/root" "$ctx/rootfs/tmp"
  cp "$BUSYBOX" "$ctx/rootfs/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$ctx/rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$ctx/rootfs/etc/group"
  chmod 700 "$ctx/rootfs/root"
  chmod 1777 "$ctx/rootfs/tmp"
  install -m 0755 "$HERE/claude" "$ctx/rootfs/usr/local/bin/claude"
  cp "$HERE/Dockerfile" "$ctx/Dockerfile"
  docker build -q --label claunch.bench=image -t "$IMAGE" "$ctx" >/dev/null 2>"$ctx/build.log" \
    || { cat "$ctx/build.log" >&2; exit 1; }
fi
echo "$IMAGE"
