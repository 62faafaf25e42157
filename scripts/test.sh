#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the tooling the tests need
# (Python venv with the reference ESDK, moto, grpcio, Helm's library and
# kubernetes-validate; buf from npm), starts the local AWS stand-in, then runs
# format/lint checks, every Rust test, the Python end-to-end tests and the Helm
# chart tests. Safe to re-run; everything lives in .venv, node_modules, .tmp,
# and the work tree stays as it was (npm ci never rewrites package-lock.json).
#
# The Rust test build reuses what `cargo run -- demo` built: same profile and,
# for every dependency, the same features (Cargo.toml aligns them), so after the
# run command only reseal's own crates and the test-only crates compile here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TMP=$ROOT/.tmp
mkdir -p "$TMP"
if [ -t 1 ]; then
  step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  step() { printf '\n== %s\n' "$*"; }
fi

# What git sees before the run; the run must leave it so.
tree_state() { git status --porcelain --untracked-files=all 2>/dev/null || true; }
BEFORE=$(tree_state)

step "Python test tooling (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --disable-pip-version-check -q --upgrade pip >/dev/null
.venv/bin/pip install --disable-pip-version-check -q -r tests/python/requirements.txt
export RESEAL_PYTHON="$ROOT/.venv/bin/python"

step "buf lint and format (npm @bufbuild/buf)"
npm ci --no-audit --no-fund --loglevel=error
npx --no-install buf lint
npx --no-install buf format -d --exit-code

step "Python gRPC stubs generated from proto/"
rm -rf "$TMP/pystubs" && mkdir -p "$TMP/pystubs"
.venv/bin/python -m grpc_tools.protoc -Iproto -Ithird_party/googleapis --python_out="$TMP/pystubs" --grpc_python_out="$TMP/pystubs" \
  proto/reseal/v1/reseal.proto
export RESEAL_PY_STUBS="$TMP/pystubs"

step "moto (AWS KMS/SSM stand-in) on loopback"
MOTO_PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$MOTO_PORT" >"$TMP/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$MOTO_PORT/moto-api/')" 2>/dev/null; then
    break
  fi
  sleep 0.2
done
export RESEAL_MOTO_URL="http://127.0.0.1:$MOTO_PORT"
# Credentials and region for the AWS SDK clients talking to moto (it accepts any).
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN
echo "moto at $RESEAL_MOTO_URL"

step "rustfmt"
cargo fmt --all --check

step "layering: lower layers never name higher ones, no import circles"
python3 scripts/check_layers.py --self-test
python3 scripts/check_layers.py

step "Rust tests (unit, engine, vectors, interop, broker, AWS, edge, tools)"
cargo test --locked --workspace --all-targets --no-fail-fast

step "clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "Helm chart: lint, render, validate"
.venv/bin/python tests/python/helm_chart.py

step "the work tree is as the run found it"
AFTER=$(tree_state)
if [ "$BEFORE" != "$AFTER" ]; then
  echo "the test run changed the work tree:" >&2
  diff <(printf '%s\n' "$BEFORE") <(printf '%s\n' "$AFTER") >&2 || true
  exit 1
fi

step "all tests passed"
