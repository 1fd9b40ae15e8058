#!/usr/bin/env bash
# Fetch the real Claude Code CLI without any container registry.
#
# The PyPI wheel `claude-agent-sdk` (manylinux x86_64) bundles the CLI at
# `claude_agent_sdk/_bundled/claude`: a self-contained ELF that needs only glibc.
# This script downloads the wheel once, extracts that one member and prints the
# path of the extracted binary on stdout (and nothing else; progress goes to stderr).
#
# Environment:
#   CLAUNCH_CACHE             cache directory (default: ${XDG_CACHE_HOME:-$HOME/.cache}/claunch)
#   CLAUDE_AGENT_SDK_VERSION  pin a wheel version (default: whatever is cached, else latest)
#
# The CLI is licensed by Anthropic: fetch it at test time, never commit it.
set -euo pipefail

log() { printf 'fetch-claude: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache="${CLAUNCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claunch}"
wheel_dir="$cache/wheel"
version="${CLAUDE_AGENT_SDK_VERSION:-}"
member="claude_agent_sdk/_bundled/claude"

command -v python3 >/dev/null 2>&1 || die "python3 not found (needed to unpack the wheel)"

# Newest cached wheel matching the pinned version (or any version).
find_wheel() {
    local pattern="claude_agent_sdk-${version:-*}-*manylinux*x86_64*.whl"
    # shellcheck disable=SC2012 # wheel names have no odd characters
    ls -1 "$wheel_dir"/$pattern 2>/dev/null | sort -V | tail -n 1 || true
}

mkdir -p "$wheel_dir"
wheel="$(find_wheel)"
if [[ -z "$wheel" ]]; then
    spec="claude-agent-sdk${version:+==$version}"
    if python3 -m pip --version >/dev/null 2>&1; then
        pip=(python3 -m pip)
    elif command -v pip >/dev/null 2>&1; then
        pip=(pip)
    else
        die "pip not found: install python3-pip, or put a claude_agent_sdk manylinux x86_64 wheel in $wheel_dir"
    fi
    log "downloading $spec (about 180 MB) into $wheel_dir"
    if ! "${pip[@]}" download --no-deps --only-binary=:all: \
        --platform manylinux_2_17_x86_64 --python-version 3.11 \
        "$spec" -d "$wheel_dir" >&2; then
        die "pip download of $spec failed (no network to PyPI?)"
    fi
    wheel="$(find_wheel)"
    [[ -n "$wheel" ]] || die "pip reported success but no $spec wheel is in $wheel_dir"
fi

# claude_agent_sdk-0.2.189-py3-none-manylinux_2_17_x86_64.whl -> 0.2.189
wheel_version="$(basename "$wheel")"
wheel_version="${wheel_version#claude_agent_sdk-}"
wheel_version="${wheel_version%%-*}"
dest_dir="$cache/claude-$wheel_version"
dest="$dest_dir/claude"

if [[ -x "$dest" && -s "$dest" ]]; then
    log "using cached $dest"
else
    log "extracting $member from $(basename "$wheel")"
    mkdir -p "$dest_dir"
    tmp="$(mktemp "$dest_dir/.claude.XXXXXX")"
    trap 'rm -f "$tmp"' EXIT
    python3 - "$wheel" "$member" "$tmp" <<'PY' || die "could not extract $member from $wheel"
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
    chmod 755 "$tmp"
    mv -f "$tmp" "$dest"
    trap - EXIT
fi

printf '%s\n' "$dest"
