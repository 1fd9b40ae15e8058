#!/usr/bin/env bash
# `claunch up` of a fleet on a three-node Docker Swarm against `docker stack deploy` of the
# equivalent compose file (the login as a Swarm secret), side by side in one run, in
# alternating order, with the bench `claude` (benches/image/claude: no API, so only the
# orchestration is timed). Issue 14's benchmark. Time: from the command until every replica
# runs and has answered a smoke `claude -p "Say hello" --max-turns 1`.
#
#   benches/swarm_up.sh                 30 replicas, 3 repetitions
#   N=12 REPS=1 benches/swarm_up.sh
#   SIDES=stack benches/swarm_up.sh    one side only (no ratio)
#
# The cluster is made here as the tests make theirs (tests/it/support/cluster.rs): three
# dockerds, each alone in a network and a UTS namespace, on a bridge of this run's own
# (10.212.K.0/24), the first the manager; the bench image is loaded into each. For the
# stack, the smoke tests are `docker exec` on each replica's own node, 8 at a time (as
# claunch's default --parallel). Everything is removed on exit, also when interrupted.
# Figures (medians) go to $OUT/summary.md (default target/bench/swarm-<time>/). Needs root
# (namespaces, iptables), fuse-overlayfs, busybox-static and /usr/bin/time.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/benches
N=${N:-30}
REPS=${REPS:-3}
SIDES=${SIDES:-stack claunch}
RUN=cls$(printf '%04x' $((RANDOM % 65536)))
OUT=${OUT:-$ROOT/target/bench/swarm-$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /tmp/claunch-swarm.XXXXXX)
mkdir -p "$OUT"

log() { printf '\n== %s\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }
now() { date +%s.%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

BRIDGE=
K=
NODES=(1 2 3)
sock() { echo "unix://$WORK/node$1/docker.sock"; }
dk() { local i=$1; shift; docker -H "$(sock "$i")" "$@"; }

teardown() {
  local i
  for i in "${NODES[@]}"; do
    [[ -f $WORK/node$i/docker.pid ]] && kill -TERM "$(cat "$WORK/node$i/docker.pid")" 2>/dev/null || true
  done
  sleep 3
  for i in "${NODES[@]}"; do
    [[ -f $WORK/node$i/docker.pid ]] && kill -KILL "$(cat "$WORK/node$i/docker.pid")" 2>/dev/null || true
    # What the engine could not stop: its containerd, the shims and their processes.
    for pid in $(pgrep -f "$WORK/node$i/exec" || true); do
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  grep -o " $WORK[^ ]*" /proc/mounts | awk '{ print length, $1 }' | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if [[ -n $K ]]; then
    for i in "${NODES[@]}"; do
      ip link del "clbh${K}x$i" 2>/dev/null || true
      ip netns del "clbn${K}x$i" 2>/dev/null || true
    done
  fi
  if [[ -n $BRIDGE ]]; then
    while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
    ip link del "$BRIDGE" 2>/dev/null || true
  fi
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  set +e +o pipefail
  note "cleaning up run $RUN"
  teardown
  rm -rf "$WORK"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

log "run $RUN: $N replicas on 3 nodes, $REPS repetitions; results in $OUT"
for tool in /usr/bin/time fuse-overlayfs nsenter unshare iptables; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed" >&2; exit 1; }
done

log "building claunch (release)"
CLAUNCH=$(cd "$ROOT" && cargo build --release --bin claunch --message-format=json 2>"$WORK/build.log" \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "claunch":
        print(m["executable"])' | tail -n 1) || { cat "$WORK/build.log" >&2; exit 1; }
note "$CLAUNCH"
IMAGE=$("$BENCH/image/build.sh")
note "$IMAGE"

log "cluster"
for k in $(seq 20 219); do
  if ip link add "clbs$k" type bridge 2>/dev/null; then K=$k; BRIDGE=clbs$k; break; fi
done
[[ -n $K ]] || { echo "error: no free bridge name clbs20..clbs219" >&2; exit 1; }
ip addr add "10.212.$K.1/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT
for i in "${NODES[@]}"; do
  ns=clbn${K}x$i veth=clbh${K}x$i inner=clbi${K}x$i d=$WORK/node$i
  mkdir -p "$d"
  ip netns add "$ns"
  ip link add "$veth" type veth peer name "$inner"
  ip link set "$inner" netns "$ns"
  ip link set "$veth" master "$BRIDGE" up
  ip -n "$ns" addr add "10.212.$K.$((10 + i))/24" dev "$inner"
  ip -n "$ns" link set "$inner" up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via "10.212.$K.1"
  printf '{"storage-driver": "fuse-overlayfs", "mtu": 1400, "default-address-pools": [{"base": "10.%d.0.0/16", "size": 24}]}\n' \
    $((110 + i)) >"$d/daemon.json"
  nsenter --net="/var/run/netns/$ns" unshare --uts sh -c \
    "hostname b${K}n$i && exec dockerd --config-file $d/daemon.json --host $(sock "$i") --data-root $d/data --exec-root $d/exec --pidfile $d/docker.pid" \
    </dev/null >"$d/dockerd.log" 2>&1 &
  disown
done
for i in "${NODES[@]}"; do
  for _ in $(seq 1 120); do dk "$i" version >/dev/null 2>&1 && break; sleep 0.5; done
  dk "$i" version >/dev/null || { tail -20 "$WORK/node$i/dockerd.log" >&2; echo "error: node $i did not start" >&2; exit 1; }
done
dk 1 swarm init --advertise-addr "10.212.$K.11" --listen-addr "10.212.$K.11:2377" >/dev/null
TOKEN=$(dk 1 swarm join-token -q worker)
for i in 2 3; do
  dk "$i" swarm join --token "$TOKEN" --advertise-addr "10.212.$K.$((10 + i))" "10.212.$K.11:2377" >/dev/null
done
for _ in $(seq 1 120); do
  [[ $(dk 1 node ls --format '{{.Status}}' | grep -c Ready) == 3 ]] && break
  sleep 0.5
done
docker save -o "$WORK/image.tar" "$IMAGE"
loads=()
for i in "${NODES[@]}"; do dk "$i" load -q -i "$WORK/image.tar" >/dev/null & loads+=($!); done
for pid in "${loads[@]}"; do wait "$pid"; done
note "$(dk 1 node ls --format '{{.Hostname}} {{.Status}} {{.ManagerStatus}}' | tr '\n' ' ')"

log "projects"
DIR=$WORK/project
mkdir -p "$DIR/creds"
python3 - "$DIR/creds/.credentials.json" <<'EOF'
import json, sys, time, uuid
doc = {"claudeAiOauth": {"accessToken": "sk-ant-oat01-BENCH" + uuid.uuid4().hex * 3,
       "refreshToken": "sk-ant-ort01-BENCH" + "R" * 96,
       "expiresAt": int(time.time() * 1000) + 8 * 3600 * 1000,
       "scopes": ["user:inference"], "subscriptionType": "pro"}}
open(sys.argv[1], "w").write(json.dumps(doc))
EOF
chmod 600 "$DIR/creds/.credentials.json"
{
  printf 'project: %s\nmode: swarm\nnodes:\n' "$RUN"
  for i in "${NODES[@]}"; do printf '  b%sn%s: %s\n' "$K" "$i" "$(sock "$i")"; done
  printf 'credentials:\n  file: creds/.credentials.json\nagents:\n  agent:\n    image: %s\n    replicas: %s\n' "$IMAGE" "$N"
} >"$DIR/claunch.yaml"
cat >"$DIR/stack.yml" <<EOF
version: "3.8"
services:
  agent:
    image: $IMAGE
    deploy:
      replicas: $N
      placement:
        preferences:
          - spread: node.id
    secrets:
      - source: login
        target: /root/.claude/.credentials.json
        mode: 0600
secrets:
  login:
    file: ./creds/.credentials.json
EOF

# The stack's replicas, as "NODE CONTAINER" lines, once all N run.
stack_replicas() {
  local i
  for i in $NODES_LIST; do
    dk "$i" ps -q --filter "label=com.docker.stack.namespace=${RUN}s" | sed "s/^/$i /"
  done
}
stack_up() {
  dk 1 stack deploy -c "$DIR/stack.yml" "${RUN}s" >/dev/null
  until [[ $(stack_replicas | wc -l) == "$N" ]]; do sleep 0.2; done
  echo "all $N running at $(date +%s.%N)"
  # shellcheck disable=SC2016
  stack_replicas | xargs -P 8 -L 1 sh -c 'docker -H "unix://$WORK/node$0/docker.sock" exec "$1" claude -p "Say hello" --max-turns 1 >/dev/null'
}
stack_down() {
  dk 1 stack rm "${RUN}s" >/dev/null
  until [[ -z $(stack_replicas) ]] && ! dk 1 network ls --format '{{.Name}}' | grep -q "^${RUN}s_"; do sleep 0.5; done
  until ! dk 1 secret ls --format '{{.Name}}' | grep -q "^${RUN}s_"; do dk 1 secret rm "${RUN}s_login" >/dev/null 2>&1 || sleep 0.5; done
}
claunch_up() { (cd "$DIR" && DOCKER_HOST=$(sock 1) "$CLAUNCH" up); }
claunch_down() {
  (cd "$DIR" && DOCKER_HOST=$(sock 1) "$CLAUNCH" down >/dev/null)
  local i
  for i in "${NODES[@]}"; do
    until [[ -z $(dk "$i" ps -aq --filter "label=claunch.project=$RUN") ]]; do sleep 0.5; done
  done
}
export WORK N DIR RUN CLAUNCH
export -f dk sock stack_replicas stack_up claunch_up
export NODES_LIST="${NODES[*]}"

printf 'rep\tside\twall_s\tcpu_s\n' >"$OUT/results.tsv"
for ((rep = 1; rep <= REPS; rep++)); do
  sides="stack claunch"
  ((rep % 2 == 0)) && sides="claunch stack"
  for side in $sides; do
    [[ " $SIDES " == *" $side "* ]] || continue
    log "rep $rep: $side"
    t0=$(now)
    echo "started at $t0" >"$WORK/$side-$rep.log"
    /usr/bin/time -f '%U %S' -o "$WORK/time" bash -c "${side}_up" >>"$WORK/$side-$rep.log" 2>&1 \
      || { tail -30 "$WORK/$side-$rep.log" >&2; echo "error: $side up failed" >&2; exit 1; }
    t1=$(now)
    WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    CPU=$(tail -n 1 "$WORK/time" | awk '{ printf "%.2f", $1 + $2 }')
    printf '%s\t%s\t%s\t%s\n' "$rep" "$side" "$WALL" "$CPU" >>"$OUT/results.tsv"
    label="claunch.project=$RUN"
    [[ $side == stack ]] && label="com.docker.stack.namespace=${RUN}s"
    spread=$(for i in "${NODES[@]}"; do dk "$i" ps -q --filter "label=$label" | wc -l; done | paste -sd/)
    note "$WALL s wall, $CPU s CPU (client), replicas per node $spread"
    cp "$WORK/$side-$rep.log" "$OUT/"
    "${side}_down"
  done
done

python3 - "$OUT" "$N" <<'EOF'
import statistics, sys
out, n = sys.argv[1], int(sys.argv[2])
rows = [l.rstrip("\n").split("\t") for l in open(out + "/results.tsv")][1:]
def med(side, col):
    return statistics.median(float(r[col]) for r in rows if r[1] == side)
sides = {r[1] for r in rows}
if sides != {"stack", "claunch"}:
    print(f"only {sorted(sides)} ran (SIDES): no ratio"); sys.exit(0)
stack, claunch = med("stack", 2), med("claunch", 2)
with open(out + "/summary.md", "w") as s:
    s.write(f"### `claunch up` against `docker stack deploy` + `docker exec` smoke tests: {n} replicas, 3 nodes\n\n")
    s.write("| | to all running and smoke-tested (s, median) | client CPU (s, median) |\n| --- | ---: | ---: |\n")
    s.write(f"| `docker stack deploy` (secret) + `docker exec` on each node, 8 at a time | {stack:.2f} | {med('stack', 3):.2f} |\n")
    s.write(f"| `claunch up` (`mode: swarm`) | {claunch:.2f} | {med('claunch', 3):.2f} |\n\n")
    s.write(f"claunch's time over the stack's: **{claunch / stack:.2f}** (goal: at most 1.0); "
            f"runs: {len(rows) // 2} of each, alternating order.\n")
print(open(out + "/summary.md").read())
EOF
