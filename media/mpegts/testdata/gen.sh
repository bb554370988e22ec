#!/bin/sh
# Regenerates the MPEG-TS fixtures the mpegts tests read. Each is 2 s of
# 320x240 @ 30 fps with a keyframe every 30 frames and 2 B-frames, plus
# 48 kHz audio, muxed by ffmpeg's mpegts muxer as OBS and ffmpeg send it
# over SRT. Run from this directory: ./gen.sh
set -eu

common_in="-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=f=440:sample_rate=48000"
ff="ffmpeg -hide_banner -loglevel error -y"

# H.264 + AAC (ADTS, several frames per PES).
$ff $common_in -t 2 \
	-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 -bf 2 -b:v 400k \
	-c:a aac -b:a 64k -ac 2 \
	-f mpegts h264_aac.ts

# H.265 + AAC, closed GOP so every 30th frame is an IDR.
$ff $common_in -t 2 \
	-c:v libx265 -preset veryfast -pix_fmt yuv420p -b:v 300k \
	-x265-params "log-level=error:keyint=30:min-keyint=30:scenecut=0:bframes=2:open-gop=0" \
	-c:a aac -b:a 64k -ac 2 \
	-f mpegts h265_aac.ts

# H.264 + Opus (registration descriptor "Opus", 20 ms packets).
$ff $common_in -t 2 \
	-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 -bf 2 -b:v 400k \
	-c:a libopus -b:a 64k -ac 2 \
	-f mpegts h264_opus.ts

# H.264 + AAC whose timestamps cross the 33-bit wrap (2^33 / 90000 s =
# 95443.7176 s) about one second in.
$ff $common_in -t 2 \
	-c:v libx264 -preset veryfast -pix_fmt yuv420p -g 30 -keyint_min 30 -sc_threshold 0 -bf 2 -b:v 400k \
	-c:a aac -b:a 64k -ac 2 \
	-output_ts_offset 95441.3 \
	-f mpegts wrap.ts
