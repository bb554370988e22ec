#!/bin/sh
# Regenerates the CMAF fixtures the ffmpeg test serves: 6 s of fragmented
# MP4, one track per file, fragments of ~200 ms, a keyframe every 2 s.
set -e
cd "$(dirname "$0")"
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc2=size=320x180:rate=25 -t 6 \
  -c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p -g 50 -keyint_min 50 -sc_threshold 0 -bf 0 -crf 35 \
  -threads 1 -fflags +bitexact -flags +bitexact -map_metadata -1 \
  -movflags +frag_keyframe+empty_moov+default_base_moof -frag_duration 200000 video.mp4
ffmpeg -hide_banner -loglevel error -y -f lavfi -i sine=frequency=440:sample_rate=48000 -t 6 \
  -c:a aac -b:a 64k -ac 2 -fflags +bitexact -flags +bitexact -map_metadata -1 \
  -movflags +frag_keyframe+empty_moov+default_base_moof -frag_duration 190000 audio.mp4
