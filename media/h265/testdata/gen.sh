#!/bin/sh
# Regenerates the H.265 Annex B fixtures (one IDR each) for the h265 tests.
set -eu
ff="ffmpeg -hide_banner -loglevel error -y"
# 642x362 is not a multiple of 8: the SPS carries a conformance window.
$ff -f lavfi -i testsrc2=size=642x362:rate=30 -frames:v 1 -c:v libx265 -preset ultrafast -x265-params log-level=error -pix_fmt yuv420p -f hevc crop.h265
# Main 4:4:4 with scaling lists.
$ff -f lavfi -i testsrc2=size=320x240:rate=30 -frames:v 1 -c:v libx265 -preset ultrafast -x265-params log-level=error:scaling-list=default -pix_fmt yuv444p -f hevc yuv444.h265
