#!/usr/bin/env python3
"""Do a thread's bursts of CPU line up with a latency tail? Reads a `reseal-bench load
--latency-trace` file (its header gives the window's start on CLOCK_MONOTONIC) and the
`perf script` text of scheduler switches recorded on the same clock, and prints the thread's
bursts in the window, how many of the slow calls (over 3x the median) fall near one, and
p99 / p50 with and without those stretches.

Record, while the load generator runs (kdamond.0 as the example thread):

    perf record -a -k CLOCK_MONOTONIC -e sched:sched_switch \\
      --filter "prev_pid == $(pgrep -x kdamond.0) || next_pid == $(pgrep -x kdamond.0)" \\
      -o kd.perf -- sleep 13
    perf script -i kd.perf -F cpu,time,trace > kd.txt

Usage: python3 benches/trace_bursts.py TRACE SWITCHES PID [BEFORE_MS AFTER_MS]   (default 20 250)
"""

import re
import sys

SWITCH = re.compile(r"\[(\d+)\]\s+([\d.]+):.*?prev_pid=(\d+) .*?next_pid=(\d+)")


def main() -> None:
    trace, switches, pid = sys.argv[1], sys.argv[2], sys.argv[3]
    before = float(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0.020
    after = float(sys.argv[5]) / 1000 if len(sys.argv) > 5 else 0.250
    start = None
    calls = []
    for line in open(trace):
        if line.startswith("# window_start_monotonic_ns"):
            start = int(line.split()[2]) / 1e9
        elif line.strip() and not line.startswith("#"):
            due, latency = map(int, line.split())
            calls.append((due / 1e6, latency))
    if start is None or not calls:
        sys.exit("the trace has no window_start_monotonic_ns header or no calls")
    # Run intervals of the thread, in seconds from the window's start.
    intervals, running_since = [], None
    for line in open(switches):
        m = SWITCH.search(line)
        if not m:
            continue
        t = float(m.group(2)) - start
        if m.group(4) == pid:
            running_since = t
        elif m.group(3) == pid and running_since is not None:
            intervals.append((running_since, t))
            running_since = None
    # A burst: runs less than 30 ms apart.
    bursts = []
    for a, b in intervals:
        if bursts and a - bursts[-1][1] < 0.030:
            bursts[-1][1] = b
            bursts[-1][2] += b - a
        else:
            bursts.append([a, b, b - a])
    end = max(due for due, _ in calls)
    bursts = [x for x in bursts if x[2] > 0.002 and -after < x[0] < end]
    near = lambda due: any(a - before <= due <= b + after for a, b, _ in bursts)  # noqa: E731
    latencies = sorted(lat for _, lat in calls)
    p50 = latencies[len(latencies) // 2]
    slow = [c for c in calls if c[1] > 3 * p50]
    slow_near = sum(1 for due, _ in slow if near(due))
    covered = sum(min(b + after, end) - max(a - before, 0) for a, b, _ in bursts)
    rest = sorted(lat for due, lat in calls if not near(due))
    ratio = lambda xs: xs[min(len(xs) - 1, int(len(xs) * 0.99))] / xs[len(xs) // 2]  # noqa: E731
    print(f"{len(calls)} calls; p99 / p50 {ratio(latencies):.1f}; {len(slow)} slow (over {3 * p50 / 1000:.2f} ms)")
    print(f"{len(bursts)} bursts over 2 ms of CPU (start s: CPU ms): "
          + " ".join(f"{a:.2f}:{cpu * 1000:.1f}" for a, _, cpu in bursts))
    print(f"{slow_near} of the slow calls fall from {before * 1000:.0f} ms before to {after * 1000:.0f} ms "
          f"after a burst, stretches covering {covered:.2f} s of {end:.2f} s")
    if rest:
        print(f"without those stretches: p99 / p50 {ratio(rest):.1f}")


if __name__ == "__main__":
    main()
