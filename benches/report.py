"""Turns the JSON written by scripts/bench.sh into the generated part of BENCHMARKS.md.

Everything quoted comes from the files of one run: the crypto floor (`floor-*.json`),
reseal under load (`peak-*`, `p70-*`, `batch-*`, `kms-*`, `idle-*`), the reference
Python ESDK (`python.json`), the official Rust ESDK (`rust-esdk.json`), and JWE
consumers (`jwe-floor-*`, `jwe-peak-*`).

Usage: python benches/report.py --dir .tmp/bench --command "scripts/bench.sh" [--write BENCHMARKS.md]
       python benches/report.py --dir .tmp/bench --command "scripts/bench.sh --jwe-only" --jwe-only
"""

from __future__ import annotations

import argparse
import datetime
import functools
import glob
import json
import math
import os
import platform
import subprocess
import sys

BEGIN = "<!-- bench.sh:begin -->"
END = "<!-- bench.sh:end -->"
FAN_OUTS = (1, 10, 100)

# The targets.
MAX_CPU_RATIO = 1.18
MIN_VS_PYTHON = 2.5
MIN_VS_RUST = 2.0
MAX_P99_OVER_P50 = 3.0
MAX_IDLE_RSS_MB = 40
MAX_LOAD_RSS_MB = 150
MAX_MARGINAL_RATIO = 1.2


def load(path: str):
    with open(path) as f:
        return json.load(f)


def maybe(path: str):
    return load(path) if os.path.exists(path) else None


def cmd(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ok(flag: bool) -> str:
    return "**met**" if flag else "**missed**"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def read_trace(path: str) -> list[int]:
    """Latencies (µs) of every call in a `bench load --latency-trace` file."""
    with open(path) as f:
        return [int(line.split()[1]) for line in f if line.strip() and not line.startswith("#")]


def quantile(sorted_xs, q: float) -> int:
    """Nearest rank, as HdrHistogram reports it."""
    rank = math.ceil(q * len(sorted_xs) - 1e-9)
    return sorted_xs[max(0, min(len(sorted_xs), rank) - 1)]


class Run:
    def __init__(self, d: str):
        self.d = d
        self.threads = sorted({int(os.path.basename(p).split("-")[1]) for p in glob.glob(f"{d}/peak-*-*-*.json")})
        self.rounds = {}
        for t in self.threads:
            for f in FAN_OUTS:
                n = len(glob.glob(f"{d}/peak-{t}-{f}-*.json"))
                self.rounds[(t, f)] = [
                    (self._bracketed(f"{d}/floor-{t}-{f}-{r}", f), load(f"{d}/peak-{t}-{f}-{r}.json"))
                    for r in range(1, n + 1)
                ]
        # Open loop at 70 % of the peak, in rounds: (report, latencies of every call) per round.
        self.p70 = {}
        for t in self.threads:
            for f in FAN_OUTS:
                n = len(glob.glob(f"{d}/p70-{t}-{f}-*.json"))
                self.p70[(t, f)] = [(load(f"{d}/p70-{t}-{f}-{r}.json"), read_trace(f"{d}/p70-{t}-{f}-{r}.trace"))
                                    for r in range(1, n + 1)]
        self.idle = {t: load(f"{d}/idle-{t}.json") for t in self.threads}
        self.python = maybe(f"{d}/python.json")
        self.rust = maybe(f"{d}/rust-esdk.json")
        # Baselines in rounds between two floors: (floor file stem, baseline) per round.
        self.baseref = {}
        for which in ("python", "rust"):
            n = len(glob.glob(f"{d}/baseref-{which}-*.json"))
            pairs = [(f"{d}/baseref-floor-{r}", maybe(f"{d}/baseref-{which}-{r}.json")) for r in range(1, n + 1)]
            self.baseref[which] = [(fl, b) for fl, b in pairs if os.path.exists(fl + ".json") and b]
        self.batch = [load(p) for p in sorted(glob.glob(f"{d}/batch-*.json"))]
        self.kms = [load(p) for p in sorted(glob.glob(f"{d}/kms-*.json"))]
        any_floor = sorted(glob.glob(f"{d}/floor-*.json"))
        self.floor_meta = load(any_floor[0]) if any_floor else {}

    @staticmethod
    def _floor_of(doc, f):
        return next(r["us_per_op"] for r in doc["results"] if r["what"] == "reencrypt" and r["fan_out"] == f)

    @classmethod
    def _bracketed(cls, stem: str, f: int) -> float:
        """The floor of one round: the mean of the floor measured just before the other side
        (`STEM.json`) and, when there is one, just after it (`STEM-after.json`), so a drift of
        the machine's speed during the round cancels to first order."""
        before = cls._floor_of(load(stem + ".json"), f)
        after = maybe(stem + "-after.json")
        return (before + cls._floor_of(after, f)) / 2 if after else before

    def floor_us(self, t: int, f: int) -> float:
        """Median floor µs per request over the rounds next to the server runs (t, f)."""
        return median(fl for fl, _ in self.rounds[(t, f)])

    def cpu_us(self, t: int, f: int) -> float:
        return median(pk["server"]["cpu_us_per_request"] for _, pk in self.rounds[(t, f)])

    def ratio(self, t: int, f: int) -> float:
        """Median over rounds of server CPU per request / the floor measured around it."""
        return median(pk["server"]["cpu_us_per_request"] / fl for fl, pk in self.rounds[(t, f)])

    def ratios(self, t: int, f: int):
        return [pk["server"]["cpu_us_per_request"] / fl for fl, pk in self.rounds[(t, f)]]

    def peak(self, t: int, f: int) -> float:
        return median(pk["requests_per_second"] for _, pk in self.rounds[(t, f)])

    def peak_run(self, t: int, f: int):
        """The round whose throughput is the median (for latency and cores busy)."""
        runs = sorted((pk for _, pk in self.rounds[(t, f)]), key=lambda pk: pk["requests_per_second"])
        return runs[len(runs) // 2]

    def p70_ratios(self, t: int, f: int) -> list[float]:
        """p99 / p50 of each open-loop round."""
        return [doc["latency_us"]["p99"] / doc["latency_us"]["p50"] for doc, _ in self.p70[(t, f)]]

    @functools.cache
    def p70_pooled(self, t: int, f: int) -> dict:
        """p50 / p90 / p99 / max (µs) over the calls of every open-loop round together
        (sorted once; the targets and the table both quote it)."""
        xs = sorted(x for _, trace in self.p70[(t, f)] for x in trace)
        return {"p50": quantile(xs, 0.5), "p90": quantile(xs, 0.9), "p99": quantile(xs, 0.99),
                "max": xs[-1], "calls": len(xs)}

    def p70_rate(self, t: int, f: int) -> float:
        return self.p70[(t, f)][0][0]["target_rate"]

    def floor_part(self, what: str) -> float:
        vals = []
        for p in glob.glob(f"{self.d}/floor-*.json"):
            vals += [r["us_per_op"] for r in load(p)["results"] if r["what"] == what]
        return median(vals)

    def baseline_ratios(self, which: str, f: int) -> list[float]:
        """Per round: the baseline's CPU per operation / the floor measured around it."""
        out = []
        for fl, doc in self.baseref.get(which, []):
            b = self.baseline(doc, f)
            if b:
                out.append(b["cpu_ms_per_op"] * 1000 / self._bracketed(fl, f))
        return out

    def advantage(self, which: str, f: int, t: int):
        """reseal's CPU advantage over a baseline, each side divided by the floor measured next to it
        (medians over rounds); None when the baseline did not run in rounds."""
        rounds = self.baseline_ratios(which, f)
        return median(rounds) / self.ratio(t, f) if rounds else None

    def baseline(self, doc, f: int):
        if not doc:
            return None
        for r in doc["results"]:
            if r["mode"] == "warm" and r["fan_out"] == f:
                return r
        return None


class JweRun:
    """JWE consumers' rounds (`jwe-peak-T-F-R.json`, each between `jwe-floor-T-F-R.json`
    and `jwe-floor-T-F-R-after.json`, the floor sealing JWE envelopes)."""

    def __init__(self, d: str):
        self.d = d
        self.rounds = {}
        for p in glob.glob(f"{d}/jwe-peak-*-*-*.json"):
            t, f = (int(x) for x in os.path.basename(p).split("-")[2:4])
            self.rounds.setdefault((t, f), None)
        for t, f in list(self.rounds):
            n = len(glob.glob(f"{d}/jwe-peak-{t}-{f}-*.json"))
            self.rounds[(t, f)] = [
                (Run._bracketed(f"{d}/jwe-floor-{t}-{f}-{r}", f), load(f"{d}/jwe-peak-{t}-{f}-{r}.json"))
                for r in range(1, n + 1)
            ]

    def fan_outs(self, t: int):
        return sorted(f for tt, f in self.rounds if tt == t)

    def threads(self):
        return sorted({t for t, _ in self.rounds})

    def cpu_us(self, t, f):
        return median(pk["server"]["cpu_us_per_request"] for _, pk in self.rounds[(t, f)])

    def floor_us(self, t, f):
        return median(fl for fl, _ in self.rounds[(t, f)])

    def ratios(self, t, f):
        return [pk["server"]["cpu_us_per_request"] / fl for fl, pk in self.rounds[(t, f)]]

    def seal_floor(self) -> float:
        vals = []
        for p in glob.glob(f"{self.d}/jwe-floor-*.json"):
            vals += [r["us_per_op"] for r in load(p)["results"] if r["what"] == "seal"]
        return median(vals)


def render_jwe(jr: JweRun) -> list[str]:
    """The JWE consumers' section: server CPU per request against the JWE floor at each
    fan-out measured, and the marginal cost of one more consumer."""
    o: list[str] = []
    w = o.append
    w("### JWE consumers")
    w("")
    w("The same input and keys, every consumer `format: jwe` (`reseal-bench setup --format jwe`: a "
      "compact JWE, RSA-OAEP-256 for the consumer's RSA-2048 key, A256GCM), in rounds of a fresh "
      "server between two floors (`reseal-bench floor --format jwe`: the Connect open, then per "
      "consumer a random CEK, RSA-OAEP-256 of it, one AES-256-GCM seal with the real header's "
      f"length as AAD; {jr.seal_floor():.1f} µs per envelope, median over this run's floors).")
    w("")
    w("| worker threads | fan-out | peak req/s | server CPU µs/req | JWE floor µs/req | CPU / floor in rounds | median |")
    w("|---|---|---|---|---|---|---|")
    for t in jr.threads():
        for f in jr.fan_outs(t):
            rs = jr.ratios(t, f)
            peak = median(pk["requests_per_second"] for _, pk in jr.rounds[(t, f)])
            w(f"| {t} | {f} | {peak:.0f} | {jr.cpu_us(t, f):.0f} | {jr.floor_us(t, f):.0f} | "
              + " ".join(f"{x:.2f}" for x in rs) + f" | **{median(rs):.2f}×** |")
    w("")
    for t in jr.threads():
        fs = jr.fan_outs(t)
        if len(fs) < 2:
            continue
        lo, hi = fs[0], fs[-1]
        mine = (jr.cpu_us(t, hi) - jr.cpu_us(t, lo)) / (hi - lo)
        floor = (jr.floor_us(t, hi) - jr.floor_us(t, lo)) / (hi - lo)
        w(f"Marginal cost of one more JWE consumer, {t} worker thread(s), ({hi} − {lo}) / {hi - lo}: "
          f"{mine:.1f} / {floor:.1f} µs = **{mine / floor:.2f}×** the floor "
          f"(target ≤ {MAX_MARGINAL_RATIO}×: {ok(mine / floor <= MAX_MARGINAL_RATIO)}).")
        w("")
    return o


def render(run: Run, command: str) -> str:
    top = max(run.threads)
    o: list[str] = []
    w = o.append
    py_v = (run.python or {}).get("versions", {})
    rs_v = (run.rust or {}).get("versions", {})
    w(BEGIN)
    w("## The comparison: crypto floor, what users run today, reseal")
    w("")
    w(f"Generated by `{command.strip()}` on {datetime.date.today().isoformat()}; every figure in this section "
      "comes from that one run (raw JSON in `.tmp/bench/`).")
    w("")
    w(f"- Machine: {run.floor_meta.get('machine', platform.platform())}")
    revision = (open(f"{run.d}/revision").read().strip() if os.path.exists(f"{run.d}/revision")
                else cmd('git', 'describe', '--always', '--dirty'))
    w(f"- reseal {revision}, {cmd('rustc', '--version')}, "
      f"aws-lc-rs {run.floor_meta.get('aws_lc_rs', '?')}")
    if py_v:
        w(f"- Python ESDK: aws-encryption-sdk {py_v.get('aws-encryption-sdk')}, cryptography "
          f"{py_v.get('cryptography')} ({py_v.get('openssl')}), Python {py_v.get('python')}, "
          f"{run.python['processes']} processes")
    if rs_v:
        w(f"- Rust ESDK: aws-esdk {rs_v.get('aws-esdk')}, {run.rust['processes']} threads")
    stalls = [load(p) for p in sorted(glob.glob(f"{run.d}/stalls-*.json"))]
    if stalls:
        w("- Machine noise (`reseal-bench stalls`, a busy loop on each idle CPU): "
          + "; ".join(f"CPU {i}: {s['per_second']:.1f} stalls/s over 0.5 ms, longest {s['longest_ms']:.1f} ms"
                      for i, s in enumerate(stalls))
          + ". Every such stall lands in somebody's latency tail.")
    w("- Work per request: an Amazon Connect-shaped input (0x0378, RSA-2048 OAEP-SHA512, frame 4096, "
      "16-byte payload) opened once and sealed for 1, 10 or 100 consumers (0x0478, one RSA-2048 "
      "OAEP-SHA256 key each). reseal runs pinned to its CPUs (`taskset`); with 1 worker thread the "
      "load generator has the other CPU, with 2 it shares both.")
    w("")

    # Targets.
    w("### Targets")
    w("")
    w("| target | " + " | ".join(f"fan-out {f}" for f in FAN_OUTS) + " | verdict |")
    w("|---|" + "---|" * (len(FAN_OUTS) + 1))
    for t in run.threads:
        ratios = [run.ratio(t, f) for f in FAN_OUTS]
        cells = [f"{run.cpu_us(t, f):.0f} / {run.floor_us(t, f):.0f} µs; rounds "
                 + " ".join(f"{x:.2f}" for x in run.ratios(t, f)) + f" → **{r:.2f}×**"
                 for f, r in zip(FAN_OUTS, ratios)]
        w(f"| server CPU per request / floor, {t} worker thread(s) (≤ {MAX_CPU_RATIO}×) | " + " | ".join(cells)
          + f" | {ok(all(r <= MAX_CPU_RATIO for r in ratios))} |")
    for which, name, doc, need in (("python", "warm Python ESDK", run.python, MIN_VS_PYTHON),
                                   ("rust", "official Rust ESDK", run.rust, MIN_VS_RUST)):
        if not doc:
            w(f"| vs {name} (≥ {need}×) | not run | | | not measured |")
            continue
        cells, flags = [], []
        for f in FAN_OUTS:
            adv = run.advantage(which, f, top)
            b = run.baseline(doc, f)
            per_core = 1e6 / run.cpu_us(top, f)
            theirs = 1000.0 / b["cpu_ms_per_op"]
            if adv is None:
                adv = per_core / theirs
            flags.append(adv >= need)
            rounds = run.baseline_ratios(which, f)
            how = ("; its CPU / floor in rounds " + " ".join(f"{x:.2f}" for x in rounds)) if rounds else ""
            cells.append(f"{per_core:.0f} vs {theirs:.0f} /core-s{how}; drift-corrected **{adv:.2f}×**")
        w(f"| throughput per core vs {name} (≥ {need}×) | " + " | ".join(cells) + f" | {ok(all(flags))} |")
        cells = []
        for f in FAN_OUTS:
            b = run.baseline(doc, f)
            mine = run.peak(top, f)
            cells.append(f"{mine:.0f} vs {b['ops_per_s']:.0f} /s = {mine / b['ops_per_s']:.1f}×")
        w(f"| (for reference) whole-machine throughput vs {name}, {top} cores; reseal shares them with its "
          "load generator | " + " | ".join(cells) + " | |")
    if len(run.threads) > 1:
        cells = []
        flags = []
        for f in FAN_OUTS:
            a, b = run.peak(1, f), run.peak(top, f)
            flags.append(b > a * 1.3)
            cells.append(f"{a:.0f} → {b:.0f} /s ({b / a:.2f}×)")
        w(f"| throughput grows with cores, 1 → {top} worker threads | " + " | ".join(cells) + f" | {ok(all(flags))} |")
    for t in run.threads:
        cells, flags, pooled_flags = [], [], []
        for f in FAN_OUTS:
            rounds = run.p70_ratios(t, f)
            r = median(rounds)
            pooled = run.p70_pooled(t, f)
            pr = pooled["p99"] / pooled["p50"]
            flags.append(r <= MAX_P99_OVER_P50)
            pooled_flags.append(pr <= MAX_P99_OVER_P50)
            cells.append("p99 / p50 in rounds " + " ".join(f"{x:.1f}" for x in rounds) + f" → **{r:.1f}**; "
                         f"all {pooled['calls']} calls pooled: {pooled['p50'] / 1000:.2f} / "
                         f"{pooled['p99'] / 1000:.2f} ms = {pr:.1f}")
        verdict = ok(all(flags))
        if all(flags) and not all(pooled_flags):
            verdict += " (median round; not pooled)"
        w(f"| p99 / p50 at 70% of peak, {t} worker thread(s) (p99 ≤ {MAX_P99_OVER_P50:.0f}× p50) | "
          + " | ".join(cells) + f" | {verdict} |")
    idle = max(run.idle[t]["idle_rss_kib"] for t in run.threads) / 1024
    w(f"| idle RSS (≤ {MAX_IDLE_RSS_MB} MB) | {idle:.1f} MiB | | | {ok(idle <= MAX_IDLE_RSS_MB)} |")
    peak_rss = max(r["server"]["after"]["peak_rss_bytes"] for r in
                   [pk for rs in run.rounds.values() for _, pk in rs]
                   + [doc for rs in run.p70.values() for doc, _ in rs]) / 2**20
    w(f"| peak RSS under load (≤ {MAX_LOAD_RSS_MB} MB) | {peak_rss:.1f} MiB | | | {ok(peak_rss <= MAX_LOAD_RSS_MB)} |")
    cells, flags = [], []
    for t in run.threads:
        # Medians of each side: the rounds of fan-out 10 and 100 are not next to each other.
        mine = (run.cpu_us(t, 100) - run.cpu_us(t, 10)) / 90
        floor = (run.floor_us(t, 100) - run.floor_us(t, 10)) / 90
        flags.append(mine / floor <= MAX_MARGINAL_RATIO)
        cells.append(f"{t} thread(s): {mine:.1f} / {floor:.1f} µs = {mine / floor:.2f}×")
    w(f"| marginal cost of one more consumer, (100 − 10) / 90 (≤ {MAX_MARGINAL_RATIO}× floor) | "
      + " | ".join(cells) + " |" * (len(FAN_OUTS) - len(cells)) + f" {ok(all(flags))} |")
    w("")

    # The floor.
    w("### (a) The crypto floor (aws-lc-rs, one thread)")
    w("")
    w("`reseal-bench floor`: the primitives only (see `tools/bench/src/floor.rs`), CPU time of the thread, "
      "on the server's first CPU, in slices alternating with the server runs (one before and one after "
      "each server round; the round's floor is their mean). Medians over this run's floor measurements:")
    w("")
    w(f"- open one Connect-shaped input: {run.floor_part('open'):.0f} µs "
      "(RSA-2048 OAEP-SHA512 decrypt, HKDF-SHA384 (one extract, one expand), 2 AES-GCM opens, P-384 verify with point decompression)")
    w(f"- seal one 0x0478 envelope: {run.floor_part('seal'):.1f} µs "
      "(2 random draws, RSA-2048 OAEP-SHA256 encrypt, HKDF-SHA512 (one extract, two expands), 2 AES-GCM seals)")
    w("")

    def machine_split(qs: list) -> str:
        ms = [q["machine"] for q in qs if q.get("machine")]
        if not ms:
            return ""
        return (f" / {median(m['load_generator_cores_busy'] for m in ms):.2f}"
                f" / {median(m['other_cores_busy'] for m in ms):.2f}")

    # reseal.
    w("### (c) reseal over gRPC")
    w("")
    w("`reseal-bench load`: closed loop for the peak (medians over the rounds; latency at peak from "
      "the median round), then an open loop at 70% of that peak, in rounds on fresh servers (a "
      "call that goes out on time is timed from its release, a late one from its scheduled time; "
      "latencies at 70% are over every call of every round). CPU and RSS of the server "
      "process from `/proc`; at 70%, the cores busy are split into the server, the load generator "
      "and everything else on the machine (`/proc/stat` less the two), medians over the rounds.")
    w("")
    w("| worker threads | fan-out | peak req/s | server CPU µs/req | floor µs/req | cores busy | p50 / p99 ms at peak "
      "| rate at 70% | server CPU µs/req at 70% | cores busy at 70%: server / load generator / other | p50 / p90 / p99 / max ms at 70% | peak RSS MiB |")
    w("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in run.threads:
        for f in FAN_OUTS:
            p, qs = run.peak_run(t, f), [doc for doc, _ in run.p70[(t, f)]]
            lp, lq = p["latency_us"], run.p70_pooled(t, f)
            w(f"| {t} | {f} | {run.peak(t, f):.0f} | {run.cpu_us(t, f):.0f} | {run.floor_us(t, f):.0f} "
              f"| {p['server']['cores_busy']:.2f} | {lp['p50'] / 1000:.2f} / {lp['p99'] / 1000:.2f} "
              f"| {run.p70_rate(t, f):.0f} | {median(q['server']['cpu_us_per_request'] for q in qs):.0f} "
              f"| {median(q['server']['cores_busy'] for q in qs):.2f}{machine_split(qs)} "
              f"| {lq['p50'] / 1000:.2f} / {lq['p90'] / 1000:.2f} / {lq['p99'] / 1000:.2f} / "
              f"{lq['max'] / 1000:.2f} | {max(q['server']['after']['peak_rss_bytes'] for q in qs) / 2**20:.1f} |")
    w("")
    for t in run.threads:
        w(f"Idle RSS with {t} worker thread(s): {run.idle[t]['idle_rss_kib'] / 1024:.1f} MiB.")
    w("")
    extra = [("batch of %d" % r["batch"], r) for r in run.batch] + [("KMS-wrapped input (moto)", r) for r in run.kms]
    if extra:
        w("| variant | fan-out | req/s | server CPU µs/req | p50 / p99 ms per call | errors |")
        w("|---|---|---|---|---|---|")
        for name, r in extra:
            lat = r["latency_us"]
            w(f"| {name} | {r['fan_out']} | {r['requests_per_second']:.0f} | {r['server']['cpu_us_per_request']:.0f} "
              f"| {lat['p50'] / 1000:.2f} / {lat['p99'] / 1000:.2f} | {r['errors']} |")
        w("")
        w("KMS-wrapped inputs: every call carries a fresh data key, so each costs one KMS Decrypt "
          "round trip to moto (a single-threaded Python server on the same machine); the throughput "
          "there is moto's, the CPU per request is reseal's (HTTP client, SigV4, JSON).")
        w("")

    # Baselines.
    w("### (b) What users run today")
    w("")
    w("Decrypt the Connect input, then encrypt once per consumer, keys and clients built once "
      "(warm); one process (Python) or thread (Rust) per core; CPU time of the workers. The "
      "machine's speed drifts between the baseline runs and reseal's, so the targets above compare "
      "each side's CPU per operation divided by a floor measured around it: for reseal the "
      "median over its rounds of server CPU / floor, for each baseline the median over "
      f"{len(run.baseref.get('python', []))} rounds of (floor, the baselines at fan-out 1, "
      "10 and 100, floor again), each round against the mean of its two floors. The raw per-core ratio, from one longer run of each baseline, is in this table.")
    w("")
    w("| implementation | fan-out | ops/s (all cores) | CPU ms/op | ops per core-s | reseal per core-s | reseal / it |")
    w("|---|---|---|---|---|---|---|")
    for name, doc in (("Python ESDK", run.python), ("Rust ESDK", run.rust)):
        if not doc:
            continue
        for r in doc["results"]:
            f = r["fan_out"]
            mine = (1e6 / run.cpu_us(top, f)) if f in FAN_OUTS else None
            theirs = 1000.0 / r["cpu_ms_per_op"]
            label = name + (" (key provider built per call)" if r["mode"] == "cold" else "")
            w(f"| {label} | {f} | {r['ops_per_s']:.0f} | {r['cpu_ms_per_op']:.2f} | {theirs:.0f} | "
              + (f"{mine:.0f} | {mine / theirs:.1f}× |" if mine else "– | – |"))
    w("")
    jr = JweRun(run.d)
    if jr.rounds:
        o.extend(render_jwe(jr))
    w(END)
    return "\n".join(o)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--command", default="scripts/bench.sh")
    ap.add_argument("--write")
    ap.add_argument("--jwe-only", action="store_true", help="print the JWE consumers' section only")
    a = ap.parse_args()
    if a.jwe_only:
        print(f"Generated by `{a.command.strip()}` on {datetime.date.today().isoformat()}.\n")
        print("\n".join(render_jwe(JweRun(a.dir))))
        return 0
    text = render(Run(a.dir), a.command)
    if not a.write:
        print(text)
        return 0
    doc = open(a.write).read() if os.path.exists(a.write) else "# Benchmarks\n"
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    with open(a.write, "w") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
