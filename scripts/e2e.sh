#!/usr/bin/env bash
# Browser tests of the web UI (tests/e2e): headless Debian Chromium driven by
# playwright-core under node's own test runner. Installs what is missing
# (node and npm, chromium, the locked npm packages), builds the server, and
# runs the suite against the debug binary. Prints node's TAP output, whose
# closing "# pass N" / "# fail N" lines scripts/test.sh adds to its summary.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  echo "e2e.sh: installing $*"
  if [ -z "${E2E_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null
    E2E_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || apt_install chromium
export CHROMIUM

want=$(node -p "require('./tests/e2e/package.json').devDependencies['playwright-core']")
have=$(node -p "try { require('./tests/e2e/node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$want" != "$have" ]; then
  (cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)
fi

# WARROOM_BIN names a server binary to test instead of building one.
if [ -z "${WARROOM_BIN:-}" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
  cargo build --quiet --locked -p warroom
  export WARROOM_BIN="$CARGO_TARGET_DIR/debug/warroom"
fi

cd tests/e2e
exec node --test --test-reporter=tap --test-concurrency=1 ui.test.js demo.test.js
