#!/bin/sh
# Regenerates the rtpfwd fixtures. Run from this directory.
set -eu
ff="ffmpeg -hide_banner -loglevel error -y"
x264="-c:v libx264 -preset veryfast -pix_fmt yuv420p -x264-params scenecut=0"

# 3 s, 320x240 at 30 fps, no B-frames, an IDR every 30 frames (frames 0, 30, 60),
# about 300 kbit/s so IDRs span several 1200-byte RTP packets (FU-A).
$ff -f lavfi -i testsrc2=size=320x240:rate=30 -t 3 $x264 -profile:v baseline -bf 0 -g 30 -keyint_min 30 -b:v 300k -f h264 gop.h264

# 1 s with B-frames, muxed to MPEG-TS so ffmpeg assigns real PTS/DTS, then
# the same access units as Annex B plus their timestamps in decode order.
$ff -f lavfi -i testsrc2=size=320x240:rate=30 -t 1 $x264 -profile:v main -bf 2 -g 30 -b:v 300k -f mpegts bframes.ts
$ff -i bframes.ts -c copy -f h264 bframes.h264
ffprobe -v error -select_streams v:0 -show_entries packet=pts,dts -of csv=p=0 bframes.ts > bframes.csv
rm bframes.ts

# 1 s of Opus (20 ms packets, 48 kHz stereo): the raw packets back to back
# and their sizes, one a line.
$ff -f lavfi -i sine=frequency=440:sample_rate=48000 -ac 2 -t 1 -c:a libopus -b:a 64k -frame_duration 20 opus.ogg
$ff -i opus.ogg -map 0:a -c copy -f data opus.raw
ffprobe -v error -select_streams a:0 -show_entries packet=size -of csv=p=0 opus.ogg > opus.csv
rm opus.ogg
