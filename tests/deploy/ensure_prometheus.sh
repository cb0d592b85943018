#!/usr/bin/env bash
# tests/deploy/test_prometheus_scrape.py scrapes a replay with a real Prometheus server (Debian's
# `prometheus` package). Installs it when missing and allowed (root with apt-get, or
# ALLOW_SERVICE_INSTALL=1); without it that one test skips and says why, so this never fails.
set -uo pipefail
if command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ]; then
  echo "prometheus: $(prometheus --version 2>&1 | head -1)"
  exit 0
fi
if [ "${ALLOW_SERVICE_INSTALL:-auto}" = 1 ] || { [ "${ALLOW_SERVICE_INSTALL:-auto}" = auto ] && [ "$(id -u)" = 0 ]; }; then
  if command -v apt-get >/dev/null; then
    echo "installing Debian's prometheus for the scrape test"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } \
      || echo "prometheus could not be installed; the scrape test will skip" >&2
    exit 0
  fi
fi
echo "prometheus is missing (Debian's 'prometheus' package); the scrape test will skip" >&2
exit 0
