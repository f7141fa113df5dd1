#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (used by scripts/screenshot_phoenix.py).
#
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (apt-get).
# Also installs a basic font set so UI text renders as glyphs, not boxes.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "install_chromium: needs root to run apt-get (try: sudo $0)" >&2
    exit 1
fi

start_s="$(date +%s)"
echo "install_chromium: apt-get install chromium and fonts (a minute or two)" >&2
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "${log}"' EXIT
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation fonts-dejavu-core; } >"${log}" 2>&1; then
    tail -n 30 "${log}" >&2
    echo "install_chromium: apt-get failed" >&2
    exit 1
fi
echo "install_chromium: $(/usr/bin/chromium --version 2>/dev/null) in $(($(date +%s) - start_s))s" >&2
