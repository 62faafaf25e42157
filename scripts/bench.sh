#!/usr/bin/env bash
# The performance comparison in one go, written into BENCHMARKS.md:
#   (a) the crypto floor: the same primitive work done directly with aws-lc-rs, one thread;
#   (b) what users run today: the reference Python ESDK (one process per core) and the
#       official Rust ESDK (one thread per core), decrypt then re-encrypt per consumer;
#   (c) reseal end to end over gRPC on loopback, with 1 and 2 worker threads,
#       at fan-out 1, 10 and 100 (0x0478 envelopes) from an Amazon Connect-shaped input.
# Plus batch calls and KMS-wrapped inputs (against moto). Ratios come from this one run.
#
# Plus JWE consumers (`format: jwe`) at fan-out 10 and 100 against their own floor.
#
# Usage: scripts/bench.sh [--quick] [--no-rust-esdk] [--no-write] [--jwe-only]
#   --quick         short runs (smoke test of the pipeline, numbers not for quoting)
#   --no-rust-esdk  skip building/running the official Rust ESDK baseline
#   --no-write      leave BENCHMARKS.md alone (results stay in .tmp/bench/)
#   --jwe-only      only the JWE consumers' rounds; prints their section, writes nothing
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.tmp/bench
RUN_SECONDS=10
ROUNDS=7
ROUND_SECONDS=4
P70_ROUNDS=5
FLOOR_SECONDS=2
RUST_ESDK=1
WRITE=1
JWE_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --quick) RUN_SECONDS=2; ROUNDS=2; ROUND_SECONDS=1; P70_ROUNDS=2; FLOOR_SECONDS=1 ;;
    --no-rust-esdk) RUST_ESDK=0 ;;
    --no-write) WRITE=0 ;;
    --jwe-only) JWE_ONLY=1; WRITE=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
CORES=$(nproc)
LAST_CPU=$((CORES - 1))
BIN=$ROOT/target/release/reseal
BENCH=$ROOT/target/release/reseal-bench
PORT=50151
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.trace

step "build (release)"
cargo build --release --locked -p reseal -p reseal-bench
# The revision measured is the one built now; the report is written later, by when the
# working tree holds its own edits.
git describe --always --dirty >"$OUT/revision" 2>/dev/null || echo unknown >"$OUT/revision"

step "Python tooling (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --disable-pip-version-check -q -r tests/python/requirements.txt
PY=$ROOT/.venv/bin/python

step "keys and configuration (.tmp/bench)"
"$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT
# The same keys and routes with every consumer `format: jwe`.
"$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT --format jwe >/dev/null
cp "$OUT/keys/reseal.yaml" "$OUT/keys/reseal-jwe.yaml"
"$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT >/dev/null

. scripts/server.sh
MOTO_PID=
cleanup() { stop_server; [ -z "$MOTO_PID" ] || kill "$MOTO_PID" 2>/dev/null || true; }
trap cleanup EXIT

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# JWE consumers: fan-out 10 and 100 with every worker thread, each round a fresh server
# between two JWE floors (the marginal cost per consumer is (100 - 10) / 90, as for ESDK).
jwe_rounds() {
  step "(a)+(c) JWE consumers: floor and reseal, $CORES worker threads, fan-out 10 and 100"
  for fan_out in 10 100; do
    for round in $(seq 1 $ROUNDS); do
      taskset -c 0 "$BENCH" floor --format jwe --keys "$OUT/keys" --fan-out $fan_out --seconds "$FLOOR_SECONDS" \
        --json "$OUT/jwe-floor-$CORES-$fan_out-$round.json" | tail -n 1
      start_server "$CORES" "0-$LAST_CPU" "$OUT/keys/reseal-jwe.yaml"
      taskset -c "0-$LAST_CPU" "$BENCH" load --threads 1 --target 127.0.0.1:$PORT --fan-out $fan_out \
        --connect-public-key "$OUT/keys/connect.pub.pem" --concurrency $((6 * CORES)) \
        --duration "${ROUND_SECONDS}s" --warmup 1s --server-pid "$SERVER_PID" \
        --json "$OUT/jwe-peak-$CORES-$fan_out-$round.json" | tail -n 1
      stop_server
      taskset -c 0 "$BENCH" floor --format jwe --keys "$OUT/keys" --fan-out $fan_out --seconds "$FLOOR_SECONDS" \
        --json "$OUT/jwe-floor-$CORES-$fan_out-$round-after.json" >/dev/null
    done
  done
}

if [ "$JWE_ONLY" = 1 ]; then
  jwe_rounds
  step "report (JWE consumers)"
  "$PY" benches/report.py --dir "$OUT" --command "scripts/bench.sh $*" --jwe-only | tee "$OUT/jwe-report.md"
  exit 0
fi

step "machine noise: how often a busy CPU is taken away"
for cpu in $(seq 0 $LAST_CPU); do
  taskset -c "$cpu" "$BENCH" stalls --seconds 5 --json "$OUT/stalls-$cpu.json"
done

step "(b) reference Python ESDK: $CORES processes"
"$PY" benches/python_esdk.py --dir "$OUT/keys" --fan-out 0,1,10,100 --processes "$CORES" \
  --seconds "$RUN_SECONDS" --warmup 1 --cold --json "$OUT/python.json"

if [ "$RUST_ESDK" = 1 ]; then
  step "(b) official Rust ESDK (aws-esdk): $CORES threads"
  (cd benches/rust-esdk && cargo build --release --locked)
  benches/rust-esdk/target/release/rust-esdk-bench --dir "$OUT/keys" --fan-out 0,1,10,100 \
    --threads "$CORES" --seconds "$RUN_SECONDS" --warmup 1 --json "$OUT/rust-esdk.json"
fi

# Drift correction: the machine's speed drifts between these runs and reseal's, so the
# targets compare each side's CPU per operation divided by a floor measured around it (the
# mean of one floor before and one after, which cancels a steady drift during the round).
# One floor sample carries the per-process variance (about 10 %) into the ratio, so the
# baselines run in rounds: floor, Python, Rust, floor; the report takes the median.
step "(b) baselines in $ROUNDS rounds, each between two floors (drift correction)"
for round in $(seq 1 $ROUNDS); do
  taskset -c 0 "$BENCH" floor --keys "$OUT/keys" --fan-out 1,10,100 --seconds "$FLOOR_SECONDS" \
    --json "$OUT/baseref-floor-$round.json" | tail -n 1
  "$PY" benches/python_esdk.py --dir "$OUT/keys" --fan-out 1,10,100 --processes "$CORES" \
    --seconds "$ROUND_SECONDS" --warmup 1 --json "$OUT/baseref-python-$round.json" >/dev/null
  if [ "$RUST_ESDK" = 1 ]; then
    benches/rust-esdk/target/release/rust-esdk-bench --dir "$OUT/keys" --fan-out 1,10,100 \
      --threads "$CORES" --seconds "$ROUND_SECONDS" --warmup 1 --json "$OUT/baseref-rust-$round.json" >/dev/null
  fi
  taskset -c 0 "$BENCH" floor --keys "$OUT/keys" --fan-out 1,10,100 --seconds "$FLOOR_SECONDS" \
    --json "$OUT/baseref-floor-$round-after.json" >/dev/null
  echo "round $round done"
done

# (a) and (c), interleaved. This shared VM's speed drifts by 10-20 % over minutes, and a
# process's speed varies by about 10 % from one start to the next (memory placement), so
# each round is a fresh server process between two fresh floor processes, on the same
# keys; the report takes the median of the per-round ratios.
for threads in 1 $CORES; do
  if [ "$threads" = 1 ]; then
    SERVER_CPUS=0; CLIENT_CPUS=$LAST_CPU; CONCURRENCY=6
  else
    SERVER_CPUS=0-$LAST_CPU; CLIENT_CPUS=0-$LAST_CPU; CONCURRENCY=$((6 * threads))
  fi
  step "(a)+(c) floor and reseal, $threads worker thread(s) on CPU $SERVER_CPUS; load generator on CPU $CLIENT_CPUS"
  # The load generator runs every caller on one thread (--threads 1): with two worker
  # threads it shares the server's CPUs, and one thread takes about a fifth less CPU per
  # call from them than one per CPU (60 against 77 µs in the open loop at 2,312 calls/s).
  for fan_out in 1 10 100; do
    for round in $(seq 1 $ROUNDS); do
      taskset -c 0 "$BENCH" floor --keys "$OUT/keys" --fan-out $fan_out --seconds "$FLOOR_SECONDS" \
        --json "$OUT/floor-$threads-$fan_out-$round.json" | tail -n 1
      start_server "$threads" "$SERVER_CPUS" "$OUT/keys/reseal.yaml"
      if [ ! -f "$OUT/idle-$threads.json" ]; then
        sleep 1
        echo "{\"threads\": $threads, \"idle_rss_kib\": $(rss_kib $SERVER_PID)}" >"$OUT/idle-$threads.json"
      fi
      taskset -c "$CLIENT_CPUS" "$BENCH" load --threads 1 --target 127.0.0.1:$PORT --fan-out $fan_out \
        --connect-public-key "$OUT/keys/connect.pub.pem" --concurrency $CONCURRENCY \
        --duration "${ROUND_SECONDS}s" --warmup 1s --server-pid "$SERVER_PID" \
        --json "$OUT/peak-$threads-$fan_out-$round.json" | tail -n 1
      stop_server
      taskset -c 0 "$BENCH" floor --keys "$OUT/keys" --fan-out $fan_out --seconds "$FLOOR_SECONDS" \
        --json "$OUT/floor-$threads-$fan_out-$round-after.json" >/dev/null
    done
    rate=$("$PY" -c "
import json, statistics
print(round(0.7 * statistics.median(json.load(open(f'$OUT/peak-$threads-$fan_out-{r}.json'))['requests_per_second'] for r in range(1, $ROUNDS + 1)), 1))")
    # The tail of one 10-second window depends on what else the VM's host did in it
    # (nine runs in one configuration gave p99 / p50 from 2.8 to 8.6), so the open
    # loop runs in rounds, each on a fresh server, with every call's latency kept: the
    # report gives each round's ratio, their median, and the p99 of all calls pooled.
    for round in $(seq 1 $P70_ROUNDS); do
      start_server "$threads" "$SERVER_CPUS" "$OUT/keys/reseal.yaml"
      taskset -c "$CLIENT_CPUS" "$BENCH" load --threads 1 --target 127.0.0.1:$PORT --fan-out $fan_out \
        --connect-public-key "$OUT/keys/connect.pub.pem" --concurrency 64 --rate "$rate" \
        --duration "${RUN_SECONDS}s" --warmup 1s --server-pid "$SERVER_PID" \
        --latency-trace "$OUT/p70-$threads-$fan_out-$round.trace" \
        --json "$OUT/p70-$threads-$fan_out-$round.json" | tail -n 1
      stop_server
    done
    if [ "$threads" != 1 ] && [ "$fan_out" = 10 ]; then
      start_server "$threads" "$SERVER_CPUS" "$OUT/keys/reseal.yaml"
      step "(c) reseal, batch calls of 10, fan-out 10"
      taskset -c "$CLIENT_CPUS" "$BENCH" load --threads 1 --target 127.0.0.1:$PORT --fan-out 10 --batch 10 \
        --connect-public-key "$OUT/keys/connect.pub.pem" --concurrency 2 \
        --duration "${RUN_SECONDS}s" --warmup 2s --server-pid "$SERVER_PID" \
        --json "$OUT/batch-$threads-10.json"
      stop_server
    fi
  done
done

jwe_rounds

step "(c) reseal with KMS-wrapped inputs (moto on loopback), fan-out 10"
MOTO_PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c "$LAST_CPU" .venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$OUT/moto.log" 2>&1 &
MOTO_PID=$!
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT"
for _ in $(seq 1 100); do
  "$PY" -c "import urllib.request; urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/')" 2>/dev/null && break
  sleep 0.2
done
KMS_ARN=$("$PY" -c "import boto3; print(boto3.client('kms').create_key()['KeyMetadata']['Arn'])")
"$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT --kms-key "$KMS_ARN" >/dev/null
cp "$OUT/keys/reseal.yaml" "$OUT/keys/reseal-kms.yaml"
"$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT >/dev/null
start_server "$CORES" "0-$LAST_CPU" "$OUT/keys/reseal-kms.yaml"
# Every call carries a fresh input (a fresh data key), so reseal's data-key cache never
# answers: each request costs one KMS Decrypt round trip, as it would in production.
KMS_CALLS=$((RUN_SECONDS * 300))
"$BENCH" load --target 127.0.0.1:$PORT --fan-out 10 --input kms --kms-key "$KMS_ARN" \
  --inputs $KMS_CALLS --max-calls $KMS_CALLS --concurrency $((6 * CORES)) --duration 120s --warmup 0s \
  --server-pid "$SERVER_PID" --json "$OUT/kms-$CORES-10.json"
stop_server

step "report"
ARGS=(--dir "$OUT" --command "scripts/bench.sh $*")
if [ "$WRITE" = 1 ]; then
  "$PY" benches/report.py "${ARGS[@]}" --write BENCHMARKS.md
  echo "BENCHMARKS.md updated"
else
  "$PY" benches/report.py "${ARGS[@]}"
fi
