#!/usr/bin/env bash
# Best effort: install Debian's Chromium and chromedriver for the UI screenshot test.
# Where it cannot be installed (no root, no apt, no network) the test skips itself.
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the UI screenshot test (apt-get)..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
    > /tmp/sp500-setup-browser.log 2>&1 || echo "chromium not installed; the screenshot test will skip"
fi
exit 0
