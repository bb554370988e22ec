#!/bin/sh
# Regenerates the fixtures of the WHIP/WHEP tests (ffmpeg with libx264 and libopus).
# video.h264: 3 s, 320x240, 30 fps, constrained baseline, no B-frames, IDR every 30 frames, one slice per picture.
# audio.ogg: 3 s Opus mono, one 20 ms packet per Ogg page (so each page is one RTP payload).
set -e
cd "$(dirname "$0")"
ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=320x240:rate=30 -t 3 \
	-c:v libx264 -profile:v baseline -pix_fmt yuv420p -bf 0 -g 30 -keyint_min 30 -sc_threshold 0 \
	-x264-params slices=1 -b:v 300k -f h264 video.h264
ffmpeg -loglevel error -y -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 \
	-c:a libopus -b:a 32k -ac 1 -frame_duration 20 -page_duration 20000 audio.ogg
