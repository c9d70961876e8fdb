"""python -m tcptrace.bench [--connections N] [--seed S] [--out DIR] [--repeat K]"""

from __future__ import annotations

import argparse
import os
import sys
import time

from rich.console import Console
from rich.table import Table

from . import GOAL_RATIO, GOAL_RSS_MIB, Run, accuracy, measure, tools, warm
from .synth import VERDICT_FIELDS, VERSION, ensure, load_truth, paths


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m tcptrace.bench", description=__doc__)
    ap.add_argument("--connections", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="bench-out", help="where the capture is cached")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest counts")
    args = ap.parse_args()
    console = Console(highlight=False)
    if not console.is_terminal:             # a log: wide enough for the table
        console = Console(highlight=False, width=110)

    cached = all(map(os.path.exists, paths(args.out, args.connections, args.seed)))
    start = time.perf_counter()
    capture, truth_path = ensure(args.out, args.connections, args.seed)
    made = "cached" if cached else f"made in {time.perf_counter() - start:.1f} s"
    truth, max_open = load_truth(truth_path)
    size = os.path.getsize(capture)
    console.print(f"capture: {capture} ({size / 2**20:.0f} MiB, generator v{VERSION}, "
                  f"seed {args.seed}, {made}): {len(truth):,} connections, up to "
                  f"{max_open:,} open at once")
    warm(capture)

    runs: list[Run] = []
    ours_out = os.path.join(args.out, "summary.jsonl")
    for i, (tool, argv) in enumerate(tools(capture)):
        stdout = ours_out if i == 0 else os.path.join(args.out, f"tool{i}.out")
        tries = [measure(tool, argv, stdout, os.path.join(args.out, f"tool{i}.err"))
                 for _ in range(args.repeat)]
        failed = next((r for r in tries if r.status != 0), None)
        if failed:
            console.print(f"[red]{tool} failed[/] (status {failed.status}): {failed.stderr}")
            if i == 0:
                return 1
            continue
        runs.append(min(tries, key=lambda r: r.wall))

    acc, segments = accuracy(truth, ours_out)
    table = Table(title=f"{segments:,} segments, {len(truth):,} connections",
                  title_justify="left")
    for name in ("tool", "wall s", "CPU s", "peak RSS MiB", "segments/s", "wall vs tshark"):
        table.add_column(name, justify="left" if name == "tool" else "right")
    tshark = next((r for r in runs if r.tool.startswith("tshark")), None)
    for r in runs:
        ratio = f"{r.wall / tshark.wall:.2f}" if tshark else "-"
        table.add_row(r.tool, f"{r.wall:.2f}", f"{r.cpu:.2f}", f"{r.rss_mib:.0f}",
                      f"{segments / r.wall:,.0f}", ratio)
    console.print(table)

    ours = runs[0]
    console.print(f"accuracy: {acc.right:,} of {acc.total:,} connections right "
                  f"({acc.right / acc.total:.3%}); {acc.missing} missing, {acc.extra} extra "
                  f"(compared: close, first_closer, rst_from, simultaneous, time_wait)")
    for e, got in acc.wrong:
        console.print(f"  {e.kind} {e.client} -> {e.server}: expected "
                      f"{[getattr(e, k) for k in VERDICT_FIELDS]}, "
                      f"got {[got[k] for k in VERDICT_FIELDS]}")
    goals = [("wall time", f"≤ {GOAL_RATIO} of tshark's",
              tshark is not None and ours.wall <= GOAL_RATIO * tshark.wall,
              f"{ours.wall / tshark.wall:.2f}" if tshark else "tshark not installed"),
             ("peak memory", f"≤ {GOAL_RSS_MIB} MiB", ours.rss_mib <= GOAL_RSS_MIB,
              f"{ours.rss_mib:.0f} MiB"),
             ("accuracy", "every connection right", acc.right == acc.total and not acc.extra,
              f"{acc.right:,}/{acc.total:,}")]
    classic = next((r for r in runs if r.tool.startswith("classic")), None)
    if classic:
        goals.append(("stretch", "faster than classic tcptrace", ours.wall < classic.wall,
                      f"{ours.wall / classic.wall:.2f}x its wall time"))
    for name, goal, met, value in goals:
        console.print(f"{'met ' if met else 'MISS'}  {name}: {goal} ({value})")
    return 0 if acc.right == acc.total and not acc.extra else 1


if __name__ == "__main__":
    sys.exit(main())
