#!/usr/bin/env bash
# Installs the system packages onair needs when they are missing:
# libsrt (cgo, for srtgo), ffmpeg/ffprobe (transcoding and tests),
# srt-tools (srt-live-transmit, a second real SRT client for tests).
# With the argument 'chromium' also Debian's chromium and chromium-driver
# (/usr/bin/chromium, /usr/bin/chromedriver) for the browser tests.
# Safe to run repeatedly.
set -euo pipefail

need=()
pkg-config --exists srt 2>/dev/null || dpkg -s libsrt-openssl-dev >/dev/null 2>&1 || need+=(libsrt-openssl-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v srt-live-transmit >/dev/null || need+=(srt-tools)
command -v gcc >/dev/null || need+=(gcc)
for p in "$@"; do
  case "$p" in
    chromium)
      command -v npm >/dev/null || need+=(npm)  # hls.js for the LL-HLS browser test
      # The browser tests need both: chromium and the chromedriver that drives it.
      [ -x /usr/bin/chromium ] || need+=(chromium)
      [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
      ;;
    *) echo "deps: unknown optional dependency '$p' (known: chromium)" >&2; exit 2 ;;
  esac
done
[ ${#need[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y --no-install-recommends "${need[@]}" >/tmp/onair-apt.log 2>&1; then
  $sudo apt-get update >/tmp/onair-apt-update.log 2>&1
  $sudo apt-get install -y --no-install-recommends "${need[@]}" >/tmp/onair-apt.log 2>&1 || {
    tail -20 /tmp/onair-apt.log >&2; echo "deps: apt-get install ${need[*]} failed" >&2; exit 1; }
fi
