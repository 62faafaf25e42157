#!/usr/bin/env bash
# Soak: issue 22's floods in rotation, each with a legitimate caller beside it,
# for SOAK_SECS (default 600: ten minutes) against a release build; every
# round records the legitimate caller's latency and throughput and the
# server's RSS (peak and after each flood) in .tmp/soak/attack.jsonl.
# A benchmark, not a test: the test command does not run it.
#
#   scripts/soak.sh                 # >= 10 minutes
#   SOAK_SECS=180 scripts/soak.sh   # a shortened run
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECS=${SOAK_SECS:-600}
DURATION=${DURATION:-10s}
SETTLE=${SETTLE:-5s}
# A round: every flood (9) after an unloaded measurement, then the settle time.
secs() { local v=$1; v=${v%s}; echo "$v"; }
per_round=$((9 * (2 * $(secs "$DURATION") + $(secs "$SETTLE"))))
ROUNDS=$(((SOAK_SECS + per_round - 1) / per_round))
echo "soak: $ROUNDS round(s) of ~${per_round} s (SOAK_SECS=$SOAK_SECS)" >&2
OUT=${OUT:-$PWD/.tmp/soak} DURATION=$DURATION SETTLE=$SETTLE ROUNDS=$ROUNDS exec scripts/attack.sh
