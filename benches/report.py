#!/usr/bin/env python3
"""Summarises one run of benches/run.sh: medians with their spread, paired ratios, and
where the engine's time went (from its own event log). Usage: report.py OUT_DIR."""

import collections
import json
import os
import statistics
import sys

OUT = sys.argv[1]
GOALS = {"floor": 1.0, "guide-seq@30": 0.7}


def load():
    rows = []
    with open(os.path.join(OUT, "results.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(header, line.rstrip("\n").split("\t")))
            r["n"] = int(r["n"])
            r["rep"] = int(r["rep"])
            r["wall_s"] = float(r["wall_s"])
            r["cpu_s"] = float(r["cpu_s"]) if r["cpu_s"] else None
            r["maxrss_kb"] = int(r["maxrss_kb"]) if r["maxrss_kb"] else None
            r["ok"] = r["ok"] == "1"
            r["extra"] = json.loads(r["extra"] or "{}")
            rows.append(r)
    return rows


ROWS = load()


def by(section, workflow, n=None):
    return [r for r in ROWS if r["section"] == section and r["workflow"] == workflow and (n is None or r["n"] == n)]


def med(xs):
    return statistics.median(xs) if xs else None


def spread(xs, unit="s", digits=2):
    """median [min–max] (count)"""
    if not xs:
        return "–"
    f = f"{{:.{digits}f}}"
    if len(xs) == 1:
        return f"{f.format(xs[0])} {unit} (1)"
    return f"{f.format(med(xs))} {unit} [{f.format(min(xs))}–{f.format(max(xs))}] ({len(xs)})"


def per_rep(section, workflow, n, key="wall_s"):
    return {r["rep"]: r[key] for r in by(section, workflow, n)}


def guide(n, variant):
    """The guide's whole workflow per repetition: compose up + that run's docker execs."""
    up = per_rep("fleet", "guide-up", n)
    ex = per_rep("fleet", f"guide-exec-{variant}", n)
    return {k: up[k] + ex[k] for k in up if k in ex}


def ratio(a, b):
    """Paired by repetition (the compared runs were interleaved): median and range."""
    rs = [a[k] / b[k] for k in a if k in b and b[k] > 0]
    if not rs:
        return None, "–"
    return med(rs), spread(rs, "×", 2)


def verdict(value, goal):
    if value is None:
        return "–"
    return f"{'met' if value <= goal else 'NOT met'} (goal ≤ {goal:.1f}×)"


def failures():
    bad = [r for r in ROWS if not r["ok"]]
    if not bad:
        return "Every run succeeded (every smoke test answered, every exit code 0).\n"
    lines = ["**Failed runs** (kept out of nothing: their times are in the figures):", ""]
    for r in bad:
        lines.append(f"- {r['section']} {r['workflow']} N={r['n']} rep {r['rep']}: {json.dumps(r['extra'])[:200]}")
    return "\n".join(lines) + "\n"


def fleet():
    sizes = sorted({r["n"] for r in ROWS if r["section"] == "fleet"})
    out = ["## 1. Fleet spin-up (create, credentials, start, smoke test)", ""]
    out.append("Wall time, median [min–max] (repetitions). The guide's workflow is `docker-compose up -d "
               "--scale agent=N` plus one `docker exec … claude -p \"Say hello\" --max-turns 1` per container, "
               "in turn (as the guide does) or 8 at a time (`xargs -P 8`).")
    out.append("")
    out.append("| N | claunch up | floor client | guide, exec in turn | guide, exec ×8 | compose up alone |")
    out.append("|---|---|---|---|---|---|")
    for n in sizes:
        c = list(per_rep("fleet", "claunch", n).values())
        f = list(per_rep("fleet", "floor", n).values())
        gs = list(guide(n, "seq").values())
        gp = list(guide(n, "par").values())
        up = list(per_rep("fleet", "guide-up", n).values())
        out.append(f"| {n} | {spread(c)} | {spread(f)} | {spread(gs)} | {spread(gp)} | {spread(up)} |")
    out.append("")
    out.append("Ratios, paired by repetition (each repetition ran the workflows back to back, in rotating "
               "order): median [min–max].")
    out.append("")
    out.append("| N | claunch ÷ floor | claunch ÷ guide (in turn) | claunch ÷ guide (×8) | floor ÷ guide (in turn) |")
    out.append("|---|---|---|---|---|")
    summary = []
    for n in sizes:
        c = per_rep("fleet", "claunch", n)
        f = per_rep("fleet", "floor", n)
        gs, gp = guide(n, "seq"), guide(n, "par")
        rf, rf_s = ratio(c, f)
        rg, rg_s = ratio(c, gs)
        _, rp_s = ratio(c, gp)
        _, fg_s = ratio(f, gs)
        out.append(f"| {n} | {rf_s} | {rg_s} | {rp_s} | {fg_s} |")
        summary.append(f"- N = {n}: claunch ÷ floor = {rf:.2f}× → {verdict(rf, GOALS['floor'])}" if rf else f"- N = {n}: –")
        if n == 30 and rg:
            summary.append(f"- N = 30: claunch ÷ guide (in turn) = {rg:.2f}× → {verdict(rg, GOALS['guide-seq@30'])}")
    out.append("")
    out += ["Goals:", ""] + summary + [""]
    out += phases(sizes)
    return "\n".join(out)


def phases(sizes):
    out = ["### Where the engine's time goes (floor client, per container)", ""]
    out.append("Each phase's latency as the floor client saw it, median over repetitions of the per-run "
               "median, and each phase's share of the summed latencies (8 containers are in flight at once, "
               "so the sums exceed the wall time).")
    out.append("")
    names = ["create", "archive", "start", "exec_create", "exec_run", "exec_inspect"]
    out.append("| N | " + " | ".join(names) + " |")
    out.append("|---|" + "---|" * len(names))
    for n in sizes:
        runs = [r["extra"] for r in by("fleet", "floor", n) if r["extra"].get("phases")]
        if not runs:
            continue
        cells = []
        for p in names:
            meds = [x["phases"][p]["median_ms"] for x in runs if x["phases"].get(p)]
            shares = [x["phases"][p]["sum_s"] / sum(v["sum_s"] for v in x["phases"].values() if v) for x in runs if x["phases"].get(p)]
            cells.append(f"{med(meds):.0f} ms ({100 * med(shares):.0f}%)" if meds else "–")
        out.append(f"| {n} | " + " | ".join(cells) + " |")
    out.append("")
    phased = [r["extra"] for r in ROWS if r["workflow"] == "floor-phased" and r["extra"].get("phase_walls_s")]
    if phased:
        n = by("fleet", "floor-phased")[0]["n"]
        walls = {k: med([x["phase_walls_s"][k] for x in phased]) for k in phased[0]["phase_walls_s"]}
        total = sum(walls.values())
        out.append(f"Phase by phase (`floor up --phased`, N = {n}: every container through one phase, 8 at a "
                   "time, before the next), median wall time of each phase:")
        out.append("")
        out.append("| " + " | ".join(walls) + " | total |")
        out.append("|" + "---|" * (len(walls) + 1))
        out.append("| " + " | ".join(f"{v:.2f} s ({100 * v / total:.0f}%)" for v in walls.values()) + f" | {total:.2f} s |")
        out.append("")
    base = per_rep("fleet", "floor", 30)
    nonet = per_rep("fleet", "floor-nonet", 30)
    if nonet and base:
        _, r_s = ratio(nonet, base)
        out.append(f"- Network set-up: the floor client at N = 30 with `NetworkMode: none` (no network, no veth, no "
                   f"DNS) takes {r_s} of the time it takes on its own user-defined network.")
    bind = per_rep("fleet", "floor-bind", 30)
    if bind and base:
        _, r_s = ratio(bind, base)
        out.append(f"- Credentials by archive upload: the floor client at N = 30 with the credentials bind-mounted "
                   f"read-only instead (the guide's way, no upload) takes {r_s} of the time.")
    if (nonet or bind) and base:
        out.append("")
    out += engine_timeline()
    return out


def engine_timeline():
    """Per workflow, from the engine's events: when each container's create, archive
    upload, start and smoke test completed, as latencies between them."""
    acc = collections.defaultdict(lambda: collections.defaultdict(list))
    walls = {(r["workflow"], r["n"], r["rep"]): r["wall_s"] for r in ROWS if r["section"] == "fleet"}
    evdir = os.path.join(OUT, "events")
    for fname in sorted(os.listdir(evdir)) if os.path.isdir(evdir) else []:
        stem = fname[: -len(".jsonl")]
        flow, n, rep = stem.rsplit("-", 2)
        n, rep = int(n), int(rep)
        with open(os.path.join(evdir, fname)) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        since = next((l["since"] for l in lines if "since" in l), None)
        if since is None:
            continue
        per = collections.defaultdict(dict)
        for e in lines:
            if e.get("Type") != "container":
                continue
            name = e.get("Actor", {}).get("Attributes", {}).get("name")
            t = e["timeNano"] / 1e9 - since
            a = e["Action"].split(":")[0]
            d = per[name]
            if a in ("create", "start", "extract-to-dir") and a not in d:
                d[a] = t
            elif a == "exec_start" and "start" in d and "exec_start" not in d:
                d["exec_start"] = t
            elif a == "exec_die" and "exec_start" in d and "exec_die" not in d:
                d["exec_die"] = t
        done = [d for d in per.values() if "create" in d and "start" in d]
        if not done:
            continue
        key = (flow, n)
        acc[key]["first_create"].append(min(d["create"] for d in done))
        acc[key]["archive"] += [d["extract-to-dir"] - d["create"] for d in done if "extract-to-dir" in d]
        acc[key]["start"] += [d["start"] - d.get("extract-to-dir", d["create"]) for d in done]
        acc[key]["smoke"] += [d["exec_die"] - d["start"] for d in done if "exec_die" in d]
        if flow != "guide":
            last = max(d.get("exec_die", d["start"]) for d in done)
            wall = walls.get((flow, n, rep))
            if wall:
                acc[key]["tail"].append(wall - last)
    if not acc:
        return []
    out = ["### The same, from the engine's event log, for every workflow", ""]
    out.append("Medians over every container of every repetition. *first create* is when the engine finished "
               "the first create after the client was launched (the client's start-up, config, version "
               "negotiation, image and network checks); *archive* is from create done to archive upload done "
               "(the claunch probe of `/etc/passwd` waits in there); *start* from upload done (compose: create "
               "done) to start done; *smoke* from start done to the smoke `claude` exiting (for the guide this "
               "waits for `compose up` to finish all containers); *tail* from the last smoke exit to the "
               "client's exit.")
    out.append("")
    out.append("| workflow | N | first create | archive | start | smoke | tail |")
    out.append("|---|---|---|---|---|---|---|")
    for (flow, n), v in sorted(acc.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        def ms(k):
            return f"{1000 * med(v[k]):.0f} ms" if v.get(k) else "–"
        out.append(f"| {flow} | {n} | {ms('first_create')} | {ms('archive')} | {ms('start')} | {ms('smoke')} | {ms('tail')} |")
    out.append("")
    return out


def streaming():
    out = ["## 2. Streaming exec (one container)", ""]
    b_c, b_d = by("stream-bytes", "claunch"), by("stream-bytes", "docker")
    t_c, t_d = by("stream-ttfb", "claunch"), by("stream-ttfb", "docker")
    if not (b_c and b_d):
        return ""
    size = b_c[0]["extra"].get("bytes", 0)
    out.append(f"`claunch exec agent-1 PROMPT` against `docker exec C claude -p PROMPT`, read to the end by "
               f"`floor ttfb`. Throughput: {size / 1e6:.0f} MB of stdout. First byte: a prompt that prints one "
               "line, waits 1 s, prints another (so the first byte is the exec's own latency).")
    out.append("")
    out.append("| | claunch exec | docker exec | claunch ÷ docker |")
    out.append("|---|---|---|---|")

    def col(rows, k):
        return {r["rep"]: r["extra"][k] for r in rows if r["extra"].get(k) is not None}

    def cpu(rows):
        return {r["rep"]: r["cpu_s"] for r in rows if r["cpu_s"] is not None}

    for label, rows_c, rows_d, k, unit, digits in [
        ("throughput (MB/s)", b_c, b_d, "mb_per_s", "MB/s", 0),
        (f"time for {size / 1e6:.0f} MB", b_c, b_d, "total_s", "s", 2),
        ("client CPU for it (user+sys)", b_c, b_d, None, "s", 2),
        ("first byte, 1-line prompt", t_c, t_d, "ttfb_ms", "ms", 1),
        ("first byte, the 200 MB one", b_c, b_d, "ttfb_ms", "ms", 1),
    ]:
        a = cpu(rows_c) if k is None else col(rows_c, k)
        b = cpu(rows_d) if k is None else col(rows_d, k)
        _, r_s = ratio(a, b)
        out.append(f"| {label} | {spread(list(a.values()), unit, digits)} | {spread(list(b.values()), unit, digits)} | {r_s} |")
    tc, td = col(t_c, "ttfb_ms"), col(t_d, "ttfb_ms")
    diffs = [tc[k] - td[k] for k in tc if k in td]
    out.append("")
    if diffs:
        out.append(f"First-byte difference, claunch − docker, paired: {spread(diffs, 'ms', 1)}.")
        out.append("")
    tp_c, tp_d = col(b_c, "mb_per_s"), col(b_d, "mb_per_s")
    r, _ = ratio(tp_c, tp_d)
    if r is not None:
        out.append(f"Goal: throughput ≥ docker exec's: {'met' if r >= 0.97 else 'NOT met'} ({r:.2f}×); "
                   f"first byte within a few ms of it: {'met' if diffs and abs(med(diffs)) <= 10 else 'NOT met'}.")
    out.append("")
    return "\n".join(out)


def fanout():
    out = ["## 3. Fan-out over a running fleet", ""]
    ex = {w: per_rep("fanout-exec", w, r["n"]) for r in ROWS if r["section"] == "fanout-exec" for w in [r["workflow"]]}
    if ex:
        n = by("fanout-exec", "claunch")[0]["n"]
        out.append(f"Smoke prompt in all {n} containers: `claunch exec --all \"Say hello\"` against a loop of "
                   "`docker exec C claude -p \"Say hello\" --max-turns 1`, in turn and 8 at a time.")
        out.append("")
        out.append("| workflow | wall | claunch ÷ it |")
        out.append("|---|---|---|")
        for w, v in ex.items():
            _, r_s = ratio(ex["claunch"], v)
            out.append(f"| {w} | {spread(list(v.values()))} | {r_s if w != 'claunch' else ''} |")
        out.append("")
    pu = {w: per_rep("creds-push", w, r["n"]) for r in ROWS if r["section"] == "creds-push" for w in [r["workflow"]]}
    if pu:
        n = by("creds-push", "claunch")[0]["n"]
        out.append(f"A new access token to {n} running containers: `claunch creds push` (reads the leader's file "
                   "back first, then writes each container's file for its user and role) against a loop of "
                   "`docker cp creds C:/root/.claude/.credentials.json`, in turn and 8 at a time.")
        out.append("")
        out.append("| workflow | wall | claunch ÷ it |")
        out.append("|---|---|---|")
        for w, v in pu.items():
            _, r_s = ratio(pu["claunch"], v)
            out.append(f"| {w} | {spread(list(v.values()))} | {r_s if w != 'claunch' else ''} |")
        out.append("")
    return "\n".join(out)


def own_cost():
    out = ["## 4. claunch's own cost", ""]
    sizes = sorted({r["n"] for r in ROWS if r["section"] == "fleet"})
    if sizes:
        n = sizes[-1]
        out.append(f"Client-side CPU (user+sys, with the children it waited for) and peak resident memory "
                   f"for the whole fleet at N = {n}, from `/usr/bin/time`:")
        out.append("")
        out.append("| client | CPU | peak RSS |")
        out.append("|---|---|---|")
        for label, w in [("claunch up", "claunch"), ("floor client", "floor"), ("docker-compose up", "guide-up"),
                         ("docker exec ×N in turn (bash + docker CLI)", "guide-exec-seq")]:
            rs = by("fleet", w, n)
            cpu = [r["cpu_s"] for r in rs if r["cpu_s"] is not None]
            rss = [r["maxrss_kb"] / 1024 for r in rs if r["maxrss_kb"]]
            out.append(f"| {label} | {spread(cpu)} | {spread(rss, 'MiB', 1)} |")
        out.append("")
    st = {w: [r["wall_s"] * 1000 for r in by("startup", w)] for w in ("claunch", "docker")}
    if st["claunch"]:
        tool = by("startup", "claunch")[0]["extra"].get("tool", "")
        out.append(f"Start-up (`--version`, {tool}): claunch {spread(st['claunch'], 'ms', 2)}, "
                   f"docker CLI {spread(st['docker'], 'ms', 2)}.")
        out.append("")
    return "\n".join(out)


def main():
    with open(os.path.join(OUT, "machine.txt")) as f:
        machine = f.read().strip()
    print("# Benchmark run\n")
    print("```\n" + machine + "\n```\n")
    print(failures())
    print(fleet())
    print(streaming())
    print(fanout())
    print(own_cost())


main()
