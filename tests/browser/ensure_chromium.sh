#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (/usr/bin/chromium), never a browser Playwright
# downloads. Installs it when missing and allowed (root with apt-get, or ALLOW_SERVICE_INSTALL=1).
set -euo pipefail
CHROMIUM=${CHROMIUM_PATH:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  echo "chromium: $("$CHROMIUM" --version 2>/dev/null || echo present)"
  exit 0
fi
if [ "${ALLOW_SERVICE_INSTALL:-auto}" = 1 ] || { [ "${ALLOW_SERVICE_INSTALL:-auto}" = auto ] && [ "$(id -u)" = 0 ]; }; then
  if command -v apt-get >/dev/null; then
    echo "installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    "$CHROMIUM" --version
    exit 0
  fi
fi
echo "Chromium is missing at $CHROMIUM (install Debian's 'chromium' package, or run as root)" >&2
exit 1
