#!/usr/bin/env bash
# The whole test suite, with its set-up: everything the tests need that a fresh machine
# lacks is installed first (Debian's busybox-static for the test images, openssh-server
# for the remote-engine tests, moto and the AWS CLI for the secrets-manager tests,
# cargo-nextest, the real claude CLI from PyPI, cached in ~/.cache/claunch), then
# `cargo nextest run` with the arguments given.
# Needs a running Docker engine: the tests fail, never skip, without one.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# busybox-static for the test images; openssh-server and -client for the remote-engine
# tests (tests/it/remote.rs starts its own sshd in a network namespace, on a port and
# with keys of its own; on a machine with systemd, installing the package also enables
# the system's sshd); prometheus (and its promtool) for the metrics tests, which start
# their own server on a loopback port.
missing=()
for pkg in busybox-static openssh-server openssh-client prometheus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"
fi
# Pinned; pip caches them.
if ! python3 -c 'import moto, awscli' >/dev/null 2>&1 || ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet 'moto[server]==5.2.1' 'awscli==1.45.11'
fi
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
# The binary and the API and OAuth stand-ins the end-to-end tests start.
cargo build --all-targets --examples
bash examples/demo/fetch-claude.sh
# A test killed by nextest's timeout cannot sweep what it made: remove what earlier runs'
# tests left (their projects are named ct<run id>-…) once it is an hour old.
if command -v docker >/dev/null 2>&1; then
  cutoff=$(( $(date +%s) - 3600 ))
  stale() { # KIND: ids of test-made objects older than an hour
    docker "$1" ls -a --filter label=claunch.project \
      --format '{{.ID}} {{.Label "claunch.project"}} {{.CreatedAt}}' 2>/dev/null |
      while read -r id project day time _; do
        case "$project" in ct[0-9a-f]*-*) ;; *) continue ;; esac
        made=$(date -d "$day $time" +%s 2>/dev/null) || continue
        [ "$made" -lt "$cutoff" ] && echo "$id"
      done
  }
  stale container | xargs -r docker rm -f >/dev/null
fi
exec cargo nextest run "$@"
