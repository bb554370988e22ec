#!/bin/sh
# Regenerates the CMAF test fixtures with ffmpeg/ffprobe (Debian ffmpeg 5.1).
# Video fixtures are encoded into MPEG-TS first so that the decode order
# timestamps (90 kHz) can be read with ffprobe; the raw Annex-B stream is
# then copied out of the TS unchanged. Each <name>.csv holds one line per
# access unit in decode order: pts,dts,flags (K = key frame).
set -eu
cd "$(dirname "$0")"

SRC="testsrc2=size=320x240:rate=30"

video() { # name codec-args...
	name=$1; shift
	ffmpeg -v error -y -f lavfi -i "$SRC" -t 2 -pix_fmt yuv420p "$@" -f mpegts "$name.ts"
	ffmpeg -v error -y -i "$name.ts" -map 0:v -c copy -f "$fmt" "$name.$fmt"
	ffprobe -v error -select_streams v:0 -show_entries packet=pts,dts,flags -of csv=p=0 "$name.ts" | grep -v "^$" > "$name.csv"
	rm "$name.ts"
}

# H.264 High profile, no B-frames, AUDs and repeated SPS/PPS in band.
fmt=h264 video h264_nobf -c:v libx264 -profile:v high -preset veryfast -b:v 300k \
	-g 30 -keyint_min 30 -sc_threshold 0 -bf 0 -x264-params aud=1:repeat-headers=1
# H.264 with B-frames (CTO > 0 and reordered PTS).
fmt=h264 video h264_bf -c:v libx264 -profile:v high -preset veryfast -b:v 300k \
	-g 30 -keyint_min 30 -sc_threshold 0 -bf 2 -x264-params aud=1:b-pyramid=none
# H.264 High 4:2:2 10-bit (avcC chroma/bit-depth trailer from the SPS) and
# High 4:4:4 Predictive (profile 244).
fmt=h264 video h264_422p10 -c:v libx264 -pix_fmt yuv422p10le -preset veryfast -b:v 150k \
	-g 30 -keyint_min 30 -sc_threshold 0 -bf 2
fmt=h264 video h264_444 -c:v libx264 -pix_fmt yuv444p -preset veryfast -b:v 150k \
	-g 30 -keyint_min 30 -sc_threshold 0 -bf 2
# H.265 Main with B-frames, closed GOPs, AUDs and repeated VPS/SPS/PPS.
fmt=hevc video h265_bf -c:v libx265 -preset veryfast -b:v 300k -tag:v hvc1 \
	-x265-params log-level=error:keyint=30:min-keyint=30:scenecut=0:bframes=2:open-gop=0:aud=1:repeat-headers=1
mv h265_bf.hevc h265_bf.h265

# AAC-LC in ADTS: stereo 48 kHz and mono 44.1 kHz.
ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 2 -ac 2 -c:a aac -b:a 96k -f adts aac_48k_stereo.adts
ffmpeg -v error -y -f lavfi -i "sine=frequency=330:sample_rate=44100" -t 2 -ac 1 -c:a aac -b:a 64k -f adts aac_44k_mono.adts

# Opus in Ogg (20 ms packets), stereo.
ffmpeg -v error -y -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 2 -ac 2 -c:a libopus -b:a 64k opus_stereo.opus
