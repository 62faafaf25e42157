#!/usr/bin/env python3
"""Where a latency tail comes from: reads a `reseal-bench load --latency-trace` file and
prints, per window of due time, the calls, the slowest one and how many took over
3 times the run's median. A tail that is a few long stretches where latency climbs
steadily is the server falling behind the offered rate (its capacity dipped below it);
one spread evenly over the run is per-call. The last line says which: the p99 of a typical
window (the median over windows of at least 50 calls) against the run's p50, and how many
windows kept their own p99 within 3 times the run's p50.

Usage: python3 benches/trace_windows.py TRACE [WINDOW_MS]   (default 100)
"""

import statistics
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
    p99 = percentile(latencies, 0.99)
    print(f"{len(calls)} calls; p50 {p50 / 1000:.2f} ms, p99 {p99 / 1000:.2f} ms; slow = over {3 * p50 / 1000:.2f} ms")
    windows = defaultdict(list)
    for due, latency in calls:
        windows[due // window_us].append(latency)
    for w in sorted(windows):
        ls = windows[w]
        slow = sum(1 for latency in ls if latency > 3 * p50)
        bar = "#" * min(60, round(max(ls) / 1000))
        print(f"{w * window_us / 1e6:7.2f} s  {len(ls):5d} calls  max {max(ls) / 1000:7.2f} ms  slow {slow:5d}  {bar}")
    window_p99s = [percentile(sorted(ls), 0.99) for ls in windows.values() if len(ls) >= 50]
    if window_p99s:
        typical = statistics.median(window_p99s)
        within = sum(1 for p in window_p99s if p <= 3 * p50)
        print(
            f"typical window: p99 {typical / 1000:.2f} ms = {typical / p50:.1f}x the run's p50; "
            f"{within} of {len(window_p99s)} windows within 3x"
        )


def percentile(ordered: list, q: float) -> int:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


if __name__ == "__main__":
    main()
