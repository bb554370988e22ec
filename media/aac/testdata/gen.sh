#!/bin/sh
# Regenerates the ADTS fixtures for the aac tests (0.2 s each).
set -eu
ff="ffmpeg -hide_banner -loglevel error -y"
$ff -f lavfi -i sine=f=440:sample_rate=48000 -t 0.2 -c:a aac -ac 2 -b:a 64k -f adts stereo48k.aac
$ff -f lavfi -i sine=f=440:sample_rate=44100 -t 0.2 -c:a aac -ac 1 -b:a 32k -f adts mono44k.aac
