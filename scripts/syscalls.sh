#!/usr/bin/env bash
# System calls per request of `reseal serve` (1 worker thread, CPU 0) under 1,000 calls of
# `reseal-bench load` (CPU 1), counted with `strace -c -f`. strace slows the server a lot,
# so only the counts mean anything, not the times. Needs strace and the set-up that
# `scripts/bench.sh` leaves in .tmp/bench (or writes it here).
#
# Usage: scripts/syscalls.sh [FAN_OUT] [BINARY]     (defaults: 1, target/release/reseal)
set -euo pipefail
cd "$(dirname "$0")/.."
FAN_OUT=${1:-1}
BIN=${2:-target/release/reseal}
BENCH=${RESEAL_BENCH:-target/release/reseal-bench}
OUT=.tmp/bench
PORT=50151
command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)" >&2; exit 2; }
[ -f "$OUT/keys/reseal.yaml" ] || "$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT
. scripts/server.sh
trap stop_server EXIT
start_server 1 0 "$OUT/keys/reseal.yaml"
strace -c -f -o "$OUT/syscalls.txt" -p $SERVER_PID 2>/dev/null &
STRACE_PID=$!
sleep 0.5
taskset -c 1 "$BENCH" load --target 127.0.0.1:$PORT --fan-out "$FAN_OUT" \
  --connect-public-key "$OUT/keys/connect.pub.pem" --concurrency 6 --duration 60s --warmup 0s \
  --max-calls 1000 --json "$OUT/syscalls-load.json" >/dev/null
sleep 0.3
kill -INT $STRACE_PID; wait $STRACE_PID || true
N=$(python3 -c "import json; print(json.load(open('$OUT/syscalls-load.json'))['requests'])")
echo "fan-out $FAN_OUT, $N requests; system calls per request:"
awk -v n="$N" 'NR > 2 && NF >= 5 && $NF != "total" { printf "  %-14s %.2f\n", $NF, $4 / n }' \
  "$OUT/syscalls.txt" | sort -k2 -nr | head -8
