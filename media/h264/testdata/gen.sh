#!/bin/sh
# Regenerates the H.264 Annex B fixtures (one IDR each) for the h264 tests.
set -eu
ff="ffmpeg -hide_banner -loglevel error -y"
# 642x362 is not a multiple of 16: the SPS carries frame cropping.
$ff -f lavfi -i testsrc2=size=642x362:rate=30 -frames:v 1 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -f h264 crop.h264
# High profile with custom quantisation matrices: the SPS carries scaling lists.
$ff -f lavfi -i testsrc2=size=320x240:rate=30 -frames:v 1 -c:v libx264 -preset veryfast -x264-params cqm=jvt -pix_fmt yuv420p -f h264 cqm.h264
# High 4:4:4 (chroma_format_idc 3).
$ff -f lavfi -i testsrc2=size=320x240:rate=30 -frames:v 1 -c:v libx264 -preset ultrafast -pix_fmt yuv444p -f h264 yuv444.h264
