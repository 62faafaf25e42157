# Sourced by the bench scripts: start and stop `reseal serve` pinned to some CPUs.
# Needs BIN (the reseal binary), OUT (where logs go) and PORT (gRPC; health is PORT + 2).

SERVER_PID=

# start_server THREADS CPUS CONFIG: reseal pinned to CPUS with THREADS (crypto) worker
# threads; returns once /readyz answers, with SERVER_PID set.
start_server() {
  local threads=$1 cpus=$2 config=$3
  RESEAL_SERVER__WORKER_THREADS=$threads taskset -c "$cpus" "$BIN" serve --config "$config" \
    >"$OUT/server-$threads.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$((PORT + 2))/readyz', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "reseal did not become ready; see $OUT/server-$threads.log" >&2
  exit 1
}

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
  fi
}
