#!/usr/bin/env bash
# `claunch run` against the naive way of running a queue of prompts on a fleet
# (`xargs -P N` over `docker exec <container> claude -p …`), on the same containers and the
# same tasks, interleaved, with the bench `claude` (benches/image/claude: no API, so only
# the orchestration is timed). Issue 11's benchmark.
#
#   benches/run_queue.sh                  30 containers, 600 tasks, 3 repetitions
#   N=10 TASKS=200 REPS=2 benches/run_queue.sh
#
# Figures (medians) go to $OUT/summary.md (default target/bench/queue-<time>/):
# - throughput of each side, and claunch's over the naive way's (goal: at least 1.0);
# - claunch's own overhead per task: on each container, the time from one exec's end
#   (`exec_die`) to the next one's creation (`exec_create`), from the engine's events;
# - claunch's peak RSS reading a 1,000- and a 100,000-task file (everything already done,
#   so only the file and the results are read).
# Everything it creates is a claunch project named <run>… and is removed on exit.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/benches
N=${N:-30}
TASKS=${TASKS:-600}
REPS=${REPS:-3}
RUN=clq$(printf '%04x' $((RANDOM % 65536)))
OUT=${OUT:-$ROOT/target/bench/queue-$(date +%Y%m%d-%H%M%S)}
WORK=$(mktemp -d /tmp/claunch-queue.XXXXXX)
mkdir -p "$OUT/events"

log() { printf '\n== %s\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }
now() { date +%s.%N; }

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  [[ -z ${WATCH:-} ]] || kill "$WATCH" 2>/dev/null || true
  note "cleaning up run $RUN"
  docker ps -aq --filter "label=claunch.project=$RUN" | xargs -r docker rm -f >/dev/null 2>&1 || true
  docker network ls -q --filter "label=claunch.project=$RUN" | xargs -r docker network rm >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# timed OUTPUT CMD…: sets WALL (s), CPU (user+sys s) and RSS (peak KiB) of CMD.
timed() {
  local out=$1 t0 t1 u s
  shift
  t0=$(now)
  /usr/bin/time -f '%U %S %M' -o "$WORK/time" "$@" >"$out" 2>&1 || { cat "$out" >&2; echo "error: $* failed" >&2; exit 1; }
  t1=$(now)
  WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  read -r u s RSS < <(tail -n 1 "$WORK/time")
  CPU=$(awk -v a="$u" -v b="$s" 'BEGIN { printf "%.2f", a + b }')
}
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

log "run $RUN: $N containers, $TASKS tasks, $REPS repetitions; results in $OUT"
[[ -x /usr/bin/time ]] || { echo "error: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }

log "building claunch (release)"
CLAUNCH=$(cd "$ROOT" && cargo build --release --bin claunch --message-format=json 2>"$WORK/build.log" \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "claunch":
        print(m["executable"])' | tail -n 1) || { cat "$WORK/build.log" >&2; exit 1; }
note "$CLAUNCH"

log "bench image"
IMAGE=$("$BENCH/image/build.sh")
note "$IMAGE"

log "fleet"
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
printf 'project: %s\ncredentials:\n  file: creds/.credentials.json\nagents:\n  agent:\n    image: %s\n    replicas: %s\n' \
  "$RUN" "$IMAGE" "$N" >"$DIR/claunch.yaml"
(cd "$DIR" && "$CLAUNCH" up --no-smoke >/dev/null)
mapfile -t CONTAINERS < <(docker ps --filter "label=claunch.project=$RUN" --format '{{.Names}}' | sort)
[[ ${#CONTAINERS[@]} == "$N" ]] || { echo "error: ${#CONTAINERS[@]} containers, not $N" >&2; exit 1; }

# The same tasks for both: claunch's file, and for the naive way one line per task naming
# its container (round robin, as a shell loop would).
for ((i = 1; i <= TASKS; i++)); do
  printf '{"id": "t%d", "prompt": "BENCH:hello %d"}\n' "$i" "$i"
done >"$DIR/tasks.jsonl"
for ((i = 0; i < TASKS; i++)); do
  printf '%s\tBENCH:hello %d\n' "${CONTAINERS[$((i % N))]}" "$((i + 1))"
done >"$WORK/naive.tsv"

naive() {
  # shellcheck disable=SC2016
  xargs -P "$N" -n 1 -d '\n' sh -c 'docker exec "${0%%	*}" claude -p --output-format stream-json --verbose -- "${0#*	}" >/dev/null' <"$WORK/naive.tsv"
}
claunch_run() {
  rm -f "$DIR/tasks.results.jsonl"
  (cd "$DIR" && "$CLAUNCH" run tasks.jsonl --parallel "$N")
}

export N WORK DIR CLAUNCH
export -f naive claunch_run
printf 'rep\tside\twall_s\tcpu_s\tmaxrss_kb\n' >"$OUT/results.tsv"
for ((rep = 1; rep <= REPS; rep++)); do
  sides="naive claunch"
  ((rep % 2 == 0)) && sides="claunch naive"
  for side in $sides; do
    log "rep $rep: $side"
    if [[ $side == claunch ]]; then
      docker events --filter "label=claunch.project=$RUN" --filter event=exec_create --filter event=exec_die \
        --format '{{json .}}' >"$OUT/events/claunch-$rep.jsonl" 2>/dev/null &
      WATCH=$!
      sleep 0.3
      timed "$WORK/$side-$rep.log" bash -c claunch_run
      sleep 0.3
      kill "$WATCH" 2>/dev/null || true
      wait "$WATCH" 2>/dev/null || true
      WATCH=
      ok=$(grep -c '"status":"ok"' "$DIR/tasks.results.jsonl" || true)
      [[ $ok == "$TASKS" ]] || { cat "$WORK/$side-$rep.log" >&2; echo "error: $ok ok of $TASKS" >&2; exit 1; }
    else
      timed "$WORK/$side-$rep.log" bash -c naive
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$side" "$WALL" "$CPU" "$RSS" >>"$OUT/results.tsv"
    note "$WALL s wall, $CPU s CPU, $RSS KiB"
  done
done

log "peak RSS by size of the tasks file (all already done)"
rss_for() {
  local n=$1 d=$WORK/rss-$1
  mkdir -p "$d"
  cp "$DIR/claunch.yaml" "$d/" && cp -r "$DIR/creds" "$d/"
  python3 - "$n" "$d" <<'EOF'
import json, sys
n, d = int(sys.argv[1]), sys.argv[2]
with open(d + "/tasks.jsonl", "w") as t, open(d + "/tasks.results.jsonl", "w") as r:
    for i in range(n):
        t.write(json.dumps({"id": f"task-{i:06d}", "prompt": f"Summarize document {i} in three bullet points"}) + "\n")
        r.write(json.dumps({"id": f"task-{i:06d}", "status": "ok", "agent": "agent", "container": "c", "attempts": 1,
                            "exit_code": 0, "result": "x" * 200, "session_id": "s", "num_turns": 1, "duration_ms": 1,
                            "total_cost_usd": 0.01, "usage": {}, "started_at": "", "ended_at": ""}) + "\n")
EOF
  (cd "$d" && /usr/bin/time -f '%M' -o "$WORK/rss" "$CLAUNCH" run tasks.jsonl >/dev/null 2>&1)
  tail -n 1 "$WORK/rss"
}
RSS_1K=$(rss_for 1000)
RSS_100K=$(rss_for 100000)
note "1,000 tasks: $RSS_1K KiB; 100,000 tasks: $RSS_100K KiB"

python3 - "$OUT" "$N" "$TASKS" "$RSS_1K" "$RSS_100K" <<'EOF'
import json, statistics, sys, glob
out, n, tasks, rss_1k, rss_100k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = [l.rstrip("\n").split("\t") for l in open(out + "/results.tsv")][1:]
def med(side, col):
    return statistics.median(float(r[col]) for r in rows if r[1] == side)
naive, claunch = med("naive", 2), med("claunch", 2)
gaps = []
for f in glob.glob(out + "/events/claunch-*.jsonl"):
    by = {}
    for line in open(f):
        e = json.loads(line)
        by.setdefault(e["id"], []).append((e["timeNano"], e["status"].split(":")[0]))
    for evs in by.values():
        evs.sort()
        for (t0, a), (t1, b) in zip(evs, evs[1:]):
            if a == "exec_die" and b == "exec_create":
                gaps.append((t1 - t0) / 1e6)
gap = statistics.median(gaps) if gaps else float("nan")
with open(out + "/summary.md", "w") as s:
    s.write(f"### `claunch run` against `xargs -P {n}` over `docker exec`: {n} containers, {tasks} tasks\n\n")
    s.write("| | wall (s, median) | tasks/min | CPU (s, median) | peak RSS (MiB) |\n| --- | ---: | ---: | ---: | ---: |\n")
    for side, wall in (("naive", naive), ("claunch", claunch)):
        s.write(f"| {side} | {wall:.1f} | {tasks * 60 / wall:.0f} | {med(side, 3):.1f} | {med(side, 4) / 1024:.0f} |\n")
    s.write(f"\nThroughput ratio claunch / naive: **{naive / claunch:.2f}x** (goal: at least 1.0x).\n\n")
    s.write(f"claunch's own overhead per task (a container's idle time between one exec's end and the next one's creation, from the engine's events): median **{gap:.1f} ms** over {len(gaps)} gaps.\n\n")
    s.write(f"Peak RSS reading a tasks file and its results (all done): 1,000 tasks {rss_1k / 1024:.1f} MiB, 100,000 tasks {rss_100k / 1024:.1f} MiB.\n")
print(open(out + "/summary.md").read())
EOF
