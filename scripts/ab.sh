#!/usr/bin/env bash
# Server CPU per request of two reseal binaries, alternating: A, B, A, B, ... each a fresh
# `reseal serve` under a closed loop of `reseal-bench load` (4 s after 1 s of warm-up).
# This machine's speed drifts by 10-20 % over minutes, so a change is judged by the
# per-pair ratios B / A, never by two separate runs. Needs the set-up that
# `scripts/bench.sh` leaves in .tmp/bench (or writes it here).
#
# Usage: scripts/ab.sh BIN_A BIN_B [FAN_OUT] [PAIRS] [THREADS]   (defaults: 100 5 1)
#   The load generator is RESEAL_BENCH (default target/release/reseal-bench) for both.
#   THREADS=1: server on CPU 0, load generator on CPU 1; THREADS=2: both share both CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
A=$1
B=$2
FAN_OUT=${3:-100}
PAIRS=${4:-5}
THREADS=${5:-1}
OUT=.tmp/bench
PORT=50151
mkdir -p "$OUT"
BENCH=${RESEAL_BENCH:-target/release/reseal-bench}
[ -x "$BENCH" ] || cargo build --release --locked -p reseal-bench
[ -f "$OUT/keys/reseal.yaml" ] || "$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT
if [ "$THREADS" = 1 ]; then SERVER_CPUS=0; CLIENT_CPUS=1; else SERVER_CPUS=0-1; CLIENT_CPUS=0-1; fi

. scripts/server.sh
trap stop_server EXIT
# cpu_per_request BINARY: sets US to the server's CPU µs per request (server BINARY).
cpu_per_request() {
  BIN=$1
  start_server "$THREADS" "$SERVER_CPUS" "$OUT/keys/reseal.yaml"
  taskset -c $CLIENT_CPUS "$BENCH" load --target 127.0.0.1:$PORT --fan-out "$FAN_OUT" \
    --connect-public-key "$OUT/keys/connect.pub.pem" --concurrency $((6 * THREADS)) \
    --duration 4s --warmup 1s --server-pid "$SERVER_PID" --json "$OUT/ab.json" >/dev/null
  stop_server
  US=$(python3 -c "import json; print(round(json.load(open('$OUT/ab.json'))['server']['cpu_us_per_request']))")
}
RATIOS=()
for pair in $(seq 1 "$PAIRS"); do
  cpu_per_request "$A"; a=$US
  cpu_per_request "$B"; b=$US
  RATIOS+=("$(python3 -c "print(f'{$b / $a:.3f}')")")
  echo "pair $pair: A $a µs, B $b µs per request, B/A ${RATIOS[-1]}"
done
python3 -c "import statistics, sys; print(f'median B/A over $PAIRS pairs: {statistics.median(map(float, sys.argv[1:])):.3f}')" "${RATIOS[@]}"
