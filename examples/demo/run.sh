#!/usr/bin/env bash
# The claunch demo in one command, with no Anthropic account and no request to Anthropic:
# build claunch, fetch the real Claude Code CLI, pack it into an image with `claunch
# image build`, start a local stand-in for Anthropic's API, and run a fleet of three
# agents on throwaway credentials: `claunch up`, `claunch exec --all`, `claunch ps`,
# `claunch down`.
#
# Needs: this repository, a running Docker engine, cargo, python3 and pip. The first run
# downloads crates and the CLI (a PyPI wheel, cached in ~/.cache/claunch); later runs
# need no network.
#
# Everything it starts is removed when it ends, also on Ctrl-C: the containers and
# network (`claunch down`), the stand-in, the temporary directory. It keeps the image
# (claunch/claude:<version>) and the CLI cache for the next run.
#
# Your own login (~/.claude) is never read: the credentials are fake, written to a
# temporary directory, and only the stand-in ever sees them.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
claunch="$target/debug/claunch"
standin="$target/debug/examples/api_standin"
project="claunch-demo"

if [[ -t 1 ]]; then
    bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    bold() { printf '\n== %s\n' "$*"; }
fi
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

tmp=""
standin_pid=""
fleet_started=""
cleanup() {
    local status=$?
    set +e
    trap - EXIT INT TERM
    if [[ -n "$fleet_started" ]]; then
        bold "cleaning up: claunch down"
        "$claunch" -f "$tmp/claunch.yaml" down
    fi
    if [[ -n "$standin_pid" ]]; then
        kill "$standin_pid" 2>/dev/null
        wait "$standin_pid" 2>/dev/null
    fi
    [[ -n "$tmp" ]] && rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bold "building claunch and the API stand-in (cargo build)"
(cd "$repo" && cargo build --bin claunch --example api_standin)

tmp="$(mktemp -d "${TMPDIR:-/tmp}/claunch-demo.XXXXXX")"

bold "checking the Docker engine"
# `ps` with a project name needs no config: it only asks the engine.
if ! said="$(cd "$tmp" && "$claunch" -p "$project" ps 2>&1)"; then
    printf '%s\n' "$said" >&2
    die "no Docker engine answers: start dockerd, or point DOCKER_HOST at one"
fi
echo "the engine answers"

bold "getting the real Claude Code CLI (examples/demo/fetch-claude.sh)"
claude="$(bash "$repo/examples/demo/fetch-claude.sh")"
version="$("$claude" --version | awk '{print $1}')"
[[ -n "$version" ]] || die "$claude --version printed no version"
image="claunch/claude:$version"
echo "claude $version at $claude"

bold "packing it into an image: claunch image build --claude $claude"
"$claunch" image build --claude "$claude"

bold "starting the local stand-in for Anthropic's Messages API"
# Containers reach the host through the default bridge's gateway (`host-gateway`):
# listen there only, so the stand-in is not exposed beyond this machine.
# That is the address of the bridge's interface (docker0) when IPAM names no gateway.
gateway=""
if command -v docker >/dev/null 2>&1; then
    gateway="$(docker network inspect bridge --format '{{range .IPAM.Config}}{{.Gateway}}{{end}}' 2>/dev/null || true)"
    if [[ -z "$gateway" ]] && command -v ip >/dev/null 2>&1; then
        bridge="$(docker network inspect bridge --format '{{index .Options "com.docker.network.bridge.name"}}' 2>/dev/null || true)"
        gateway="$(ip -4 -o addr show dev "${bridge:-docker0}" 2>/dev/null | awk 'NR == 1 { split($4, a, "/"); print a[1] }' || true)"
    fi
fi
"$standin" --listen "${gateway:-0.0.0.0}:0" --record "$tmp/requests.jsonl" \
    >"$tmp/standin.out" 2>"$tmp/standin.log" &
standin_pid=$!
for _ in $(seq 1 50); do
    grep -q '^listening on ' "$tmp/standin.out" 2>/dev/null && break
    kill -0 "$standin_pid" 2>/dev/null || die "the stand-in exited: $(cat "$tmp/standin.log")"
    sleep 0.1
done
port="$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/standin.out")"
[[ -n "$port" ]] || die "the stand-in did not say where it listens"
url="http://host.docker.internal:$port"

bold "throwaway credentials in $tmp/claude (your ~/.claude is not used)"
mkdir -m 700 "$tmp/claude"
expires=$(( ($(date +%s) + 8 * 3600) * 1000 ))
token="sk-ant-oat01-DEMO-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077 && cat >"$tmp/claude/.credentials.json" <<EOF
{"claudeAiOauth": {"accessToken": "$token", "refreshToken": "sk-ant-ort01-DEMO-not-a-real-token",
 "expiresAt": $expires, "scopes": ["user:inference"], "subscriptionType": "pro"}}
EOF
)

# Every agent talks to the stand-in; HTTPS_PROXY is the stand-in too, and it refuses to
# tunnel anywhere, so nothing claude tries beyond the API leaves this machine.
agent() {
    cat <<EOF
  $1:
    image: $image
${2:+    user: $2
}    extra_hosts: ["host.docker.internal:host-gateway"]
    env:
      ANTHROPIC_BASE_URL: $url
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1"
      HTTPS_PROXY: $url
      NO_PROXY: host.docker.internal
EOF
}
{
    printf 'project: %s\ncredentials:\n  file: %s\nagents:\n' "$project" "$tmp/claude/.credentials.json"
    agent planner
    agent coder agent
    agent reviewer agent
} >"$tmp/claunch.yaml"

engine=""
if command -v docker >/dev/null 2>&1; then
    engine="$(docker version --format '{{.Server.Version}}' 2>/dev/null || true)"
fi
cat <<EOF

  real:      Claude Code $version (Anthropic's CLI, unmodified), the Docker engine${engine:+ $engine}, claunch
  stand-in:  Anthropic's Messages API, played by examples/api_standin.rs on ${gateway:-0.0.0.0}:$port
  fake:      the login; no request leaves this machine
EOF

cd "$tmp"
bold "claunch up: create, deliver credentials, start, smoke-test with the real claude -p"
fleet_started=1
"$claunch" up

bold "claunch exec --all \"Say hello\": every agent's claude answers"
"$claunch" exec --all "Say hello"

bold "claunch exec coder-1 ... --output-format stream-json (first lines)"
# sed reads to the end (head would cut the pipe under claunch).
"$claunch" exec coder-1 "Say hello" --output-format stream-json | sed -n '1,2{s/^\(.\{110\}\).*/\1 …/;p}'

bold "claunch ps"
"$claunch" ps

requests="$(grep -c '"path":"/v1/messages' "$tmp/requests.jsonl" || true)"
bearer="$(grep -c "\"authorization\":\"Bearer $token\"" "$tmp/requests.jsonl" || true)"
echo
echo "the stand-in answered $requests Messages API requests; $bearer carried the demo login's token"

bold "claunch down"
"$claunch" down
fleet_started=""

cat <<EOF

Done. Kept for next time: the image $image (docker rmi $image removes it)
and the CLI in ${CLAUNCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/claunch}.
EOF
