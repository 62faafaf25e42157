#!/usr/bin/env bash
# Where the server's CPU goes, next to the floor's: perf profiles of `reseal serve`
# under `reseal-bench load` and of `reseal-bench floor`, split by kind of work
# (benches/perf_shares.py). Needs `perf` (linux-perf) and the set-up `scripts/bench.sh`
# leaves in .tmp/bench (or writes it here).
#
# Usage: scripts/profile.sh [FAN_OUT] [THREADS]     (defaults: 100 1)
#   THREADS=1: server on CPU 0, load generator on CPU 1 (as bench.sh does);
#   THREADS=2: both share both CPUs.
#
# The floor is nearly all cryptography; if the same instructions ran at the same speed
# in both, the server's CPU per request would be floor_crypto / server_crypto times the
# floor's. That "share ratio" is printed last: it measures the server's own overhead
# without the machine's drift, which moves both profiles alike.
set -euo pipefail
cd "$(dirname "$0")/.."
FAN_OUT=${1:-100}
THREADS=${2:-1}
OUT=.tmp/bench
BIN=target/release/reseal
BENCH=target/release/reseal-bench
PORT=50151
command -v perf >/dev/null || { echo "perf is not installed (apt-get install linux-perf)" >&2; exit 2; }
cargo build --release --locked -p reseal -p reseal-bench
[ -f "$OUT/keys/reseal.yaml" ] || "$BENCH" setup --dir "$OUT/keys" --consumers 100 --port $PORT
if [ "$THREADS" = 1 ]; then SERVER_CPUS=0; CLIENT_CPUS=1; CONCURRENCY=6
else SERVER_CPUS=0-1; CLIENT_CPUS=0-1; CONCURRENCY=$((6 * THREADS)); fi

. scripts/server.sh
trap stop_server EXIT
start_server "$THREADS" "$SERVER_CPUS" "$OUT/keys/reseal.yaml"
taskset -c $CLIENT_CPUS "$BENCH" load --target 127.0.0.1:$PORT --fan-out "$FAN_OUT" \
  --connect-public-key "$OUT/keys/connect.pub.pem" --concurrency $CONCURRENCY \
  --duration 9s --warmup 1s --server-pid $SERVER_PID --json "$OUT/profile-load.json" >/dev/null &
LOAD_PID=$!
sleep 2
perf record -F 1999 -o "$OUT/profile-server.data" -p $SERVER_PID -- sleep 6 >/dev/null 2>&1
wait $LOAD_PID
stop_server

taskset -c 0 perf record -F 1999 -o "$OUT/profile-floor.data" -- \
  "$BENCH" floor --keys "$OUT/keys" --fan-out "$FAN_OUT" --seconds 3 >/dev/null 2>&1

shares() { perf report -i "$1" --no-children --sort dso,sym --stdio 2>/dev/null | python3 benches/perf_shares.py; }
SERVER=$(shares "$OUT/profile-server.data")
FLOOR=$(shares "$OUT/profile-floor.data")
echo "server (fan-out $FAN_OUT, $THREADS worker thread(s)): $SERVER"
echo "floor:  $FLOOR"
python3 - "$SERVER" "$FLOOR" <<'EOF'
import json, sys
server, floor = (json.loads(a) for a in sys.argv[1:3])
print(f"share ratio (floor crypto / server crypto): "
      f"{floor.get('crypto', 0) / max(server.get('crypto', 0), 0.1):.2f}")
EOF
