#!/usr/bin/env python3
"""Where a process's CPU goes, by kind of work, from a flat `perf report`.

Reads `perf report --no-children --sort dso,sym --stdio` on stdin and prints the
share of samples in each category as JSON. Used by `scripts/profile.sh` to put the
server's profile next to the floor's: the floor is nearly all cryptography, so
every point the server spends outside it is overhead the CPU-per-request target
counts (BENCHMARKS.md, "Where the time goes").

Categories:
  crypto      aws-lc's C code (symbols without Rust paths in the reseal binary)
  kernel      anything in [kernel.kallsyms]: syscalls, wake-ups, loopback TCP
  rpc         tokio, hyper, h2, tonic, tower, prost, bytes, mio, the gRPC edge
  logging     tracing, serde_json, fmt, metrics: audit line and counters
  malloc      glibc malloc/free
  memory      glibc memcpy/memset/memcmp
  broker      every other Rust function (engine framing, broker bookkeeping)
  other       the rest (other libc, vdso, ...)
"""

import json
import re
import sys
from collections import Counter

LINE = re.compile(r"\s*([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)")
RPC = ("tokio", "hyper", "h2::", "tonic", "tower", "prost", "http", "bytes::", "mio", "grpc")
LOGGING = ("tracing", "serde_json", "fmt", "metrics", "prometheus", "telemetry", "audit")
MALLOC = ("malloc", "free", "_int_", "unlink_chunk", "realloc", "calloc", "consolidate", "tcache")


def category(dso: str, mode: str, sym: str) -> str:
    if mode == "k":
        return "kernel"
    if dso.startswith("libc"):
        if any(m in sym for m in MALLOC):
            return "malloc"
        if "mem" in sym:
            return "memory"
        return "other"
    if dso.startswith("reseal"):
        rust = "::" in sym or sym.startswith(("<", "_ZN", "__rust"))
        if not rust:
            return "crypto"
        if any(r in sym for r in RPC):
            return "rpc"
        if any(t in sym for t in LOGGING):
            return "logging"
        return "broker"
    return "other"


def main() -> None:
    shares: Counter = Counter()
    for line in sys.stdin:
        m = LINE.match(line)
        if m:
            percent, dso, mode, sym = m.groups()
            shares[category(dso, mode, sym.strip())] += float(percent)
    print(json.dumps({k: round(v, 1) for k, v in shares.most_common()}))


if __name__ == "__main__":
    main()
