#!/usr/bin/env python3
"""Where a latency tail comes from: reads a `reseal bench load --latency-trace` file and
prints, per window of due time, the calls, the slowest one and how many took over
3 times the run's median. A tail that is a few long stretches where latency climbs
steadily is the server falling behind the offered rate (its capacity dipped below it);
one spread evenly over the run is per-call.

Usage: python3 benches/trace_windows.py TRACE [WINDOW_MS]   (default 100)
"""

import sys
from collections import defaultdict


def main() -> None:
    path = sys.argv[1]
    window_us = int(float(sys.argv[2]) * 1000) if len(sys.argv) > 2 else 100_000
    calls = []
    for line in open(path):
        if line.strip() and not line.startswith("#"):
            due, latency = map(int, line.split())
            calls.append((due, latency))
    if not calls:
        sys.exit("no calls in the trace")
    latencies = sorted(latency for _, latency in calls)
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"{len(calls)} calls; p50 {p50 / 1000:.2f} ms, p99 {p99 / 1000:.2f} ms; slow = over {3 * p50 / 1000:.2f} ms")
    windows = defaultdict(list)
    for due, latency in calls:
        windows[due // window_us].append(latency)
    for w in sorted(windows):
        ls = windows[w]
        slow = sum(1 for latency in ls if latency > 3 * p50)
        bar = "#" * min(60, round(max(ls) / 1000))
        print(f"{w * window_us / 1e6:7.2f} s  {len(ls):5d} calls  max {max(ls) / 1000:7.2f} ms  slow {slow:5d}  {bar}")


if __name__ == "__main__":
    main()
