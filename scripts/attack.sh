#!/usr/bin/env bash
# Issue 22's floods against a release `reseal serve` (default server limits)
# on loopback, each with a legitimate caller beside it: the "Under attack"
# table of BENCHMARKS.md. Not part of the test command.
#
#   scripts/attack.sh                      # every flood once, 20 s each
#   FLOODS="edk16 streams" DURATION=10s scripts/attack.sh
#   ROUNDS=3 scripts/attack.sh             # a soak (scripts/soak.sh sets it)
#
# Builds nothing: it uses target/release/{reseal,reseal-bench}
# (cargo build --release --bin reseal --bin reseal-bench -p reseal -p reseal-bench).
# Writes rows (markdown on stdout, JSON lines in $OUT/attack.jsonl) and the
# server's log to $OUT (default .tmp/attack).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release/reseal}
BENCH=${BENCH:-$ROOT/target/release/reseal-bench}
OUT=${OUT:-$ROOT/.tmp/attack}
PORT=${PORT:-50151}
HTTP_PORT=${HTTP_PORT:-$((PORT + 10))}
DURATION=${DURATION:-20s}
SETTLE=${SETTLE:-30s}
ROUNDS=${ROUNDS:-1}
FLOODS=${FLOODS:-}
for b in "$BIN" "$BENCH"; do
  [ -x "$b" ] || { echo "$b is missing: cargo build --release --bin reseal --bin reseal-bench -p reseal -p reseal-bench" >&2; exit 1; }
done
mkdir -p "$OUT"
rm -rf "$OUT/setup" && mkdir -p "$OUT/setup"
"$BENCH" setup --dir "$OUT/setup" --consumers 1 --port "$PORT" >/dev/null
# Default limits: drop the set-up's raised concurrency limit; open the HTTP/JSON door.
sed -i -e '/^  max_concurrent_requests: /d' \
  -e "s/^server:\$/server:\n  http_listen: 127.0.0.1:$HTTP_PORT/" "$OUT/setup/reseal.yaml"

"$BIN" serve --config "$OUT/setup/reseal.yaml" >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
trap 'kill -TERM $SERVER_PID 2>/dev/null || true; wait $SERVER_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$((PORT + 2))/readyz', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

args=(attack --target "127.0.0.1:$PORT" --http "127.0.0.1:$HTTP_PORT"
  --connect-public-key "$OUT/setup/connect.pub.pem" --server-pid "$SERVER_PID"
  --duration "$DURATION" --settle "$SETTLE" --rounds "$ROUNDS" --json "$OUT/attack.jsonl")
for f in $FLOODS; do args+=(--flood "$f"); done
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); DURATION=$DURATION SETTLE=$SETTLE ROUNDS=$ROUNDS"
"$BENCH" "${args[@]}"
