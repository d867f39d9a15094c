#!/usr/bin/env bash
# Installs what the browser tests (tests/it/browser.rs) need, when it is missing:
#   - Debian's chromium (/usr/bin/chromium), from apt;
#   - tests/browser/node_modules, from tests/browser/package-lock.json (npm ci).
# Node.js 20 or later and npm must already be on PATH.
# Idempotent: does nothing when everything is there. Run as root (CI is).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "browser-setup: installing Debian's chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium
fi

if [ ! -d tests/browser/node_modules ]; then
  command -v npm >/dev/null || { echo "browser-setup: npm (Node.js 20+) is needed" >&2; exit 1; }
  echo "browser-setup: npm ci --prefix tests/browser"
  # playwright-core never downloads a browser; the tests use /usr/bin/chromium.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix tests/browser --no-audit --no-fund
fi

echo "browser-setup: $(/usr/bin/chromium --version 2>/dev/null | head -n1); node $(node --version);" \
  "playwright-core $(node -p "require('./tests/browser/node_modules/playwright-core/package.json').version")"
