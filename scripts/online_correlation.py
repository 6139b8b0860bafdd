#!/usr/bin/env python3
"""Spearman rank correlation between offline and online metrics across the
(arm, world, seed) units of a run directory, and a summary of the units'
online.json (lift to control with its bootstrap interval, and the shadow
share) (docs/results.md, "Online A/B (simulated)").

    scripts/online_correlation.py results/paper-online
"""
import glob
import json
import os
import sys


def ranks(xs):
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2 + 1  # average rank of ties
        i = j + 1
    return r


def spearman(a, b):
    ra, rb = ranks(a), ranks(b)
    n = len(a)
    ma, mb = sum(ra) / n, sum(rb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
    va = sum((x - ma) ** 2 for x in ra) ** 0.5
    vb = sum((y - mb) ** 2 for y in rb) ** 0.5
    return cov / (va * vb) if va and vb else float("nan")


def main(run):
    units = []
    for path in sorted(glob.glob(os.path.join(run, "arms", "*", "**", "result.json"), recursive=True)):
        with open(path) as f:
            r = json.load(f)
        if r.get("status") != "ok":
            continue
        units.append((r["arm"], r.get("world", ""), {m["metric"]: m["mean"] for m in r["metrics"]}))
    offline = [k for k in units[0][2] if not k.endswith(":online")]
    online = [k for k in units[0][2] if k.endswith(":online")]
    print(f"{len(units)} units ({', '.join(sorted({u[0] for u in units}))})")
    print("offline \\ online | " + " | ".join(online))
    for off in offline:
        row = [spearman([u[2][off] for u in units], [u[2][on] for u in units]) for on in online]
        print(f"{off} | " + " | ".join(f"{x:+.2f}" for x in row))


def summary(run):
    print()
    print("arm | world | " + " | ".join(["CTR lift [95% CI]", "long-play lift", "RQR lift", "share: control (shadow) -> arm", "search s / stage s"]))
    for path in sorted(glob.glob(os.path.join(run, "arms", "*", "**", "online.json"), recursive=True)):
        with open(path) as f:
            o = json.load(f)
        c = {x["metric"]: x for x in o["comparisons"]}
        world = os.path.basename(os.path.dirname(os.path.dirname(path)))
        cells = [f"{100*c[m]['lift']:+.2f}% [{100*c[m]['lift_lo']:+.2f}, {100*c[m]['lift_hi']:+.2f}]" for m in ("ctr", "longplay", "rqr")]
        cells.append(f"{100*c['share']['control']:.1f}% -> {100*c['share']['arm']:.1f}%")
        cells.append(f"{o['search_seconds']:.1f} / {o['seconds']:.1f} ({o['search_calls']} calls)")
        print(f"{o['arm']} | {world} | " + " | ".join(cells))


if __name__ == "__main__":
    run = sys.argv[1] if len(sys.argv) > 1 else "results/paper-online"
    main(run)
    summary(run)
