#!/usr/bin/env bash
# Re-make the demo origin's clips (host/src/demo.rs embeds them): per rendition of
# the demo ladder, 6 s of ffmpeg's testsrc2 pattern with the rendition's name drawn
# on it and a 440 Hz tone, H.264 High + AAC-LC in MPEG-TS, cut into three 2 s
# segments that each start with a keyframe. The bitrates are far below the ladder's
# nominal BANDWIDTH so the binary stays small (about 640 KB for all twelve); the
# demo stream loops them, with a discontinuity at every loop.
# Needs Debian's ffmpeg (with libx264 and libfreetype) and fonts-dejavu-core.
set -euo pipefail
cd "$(dirname "$0")"
font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
for r in "360p 640 360 3.1 70k" "540p 960 540 3.1 100k" "720p 1280 720 3.1 150k" "1080p 1920 1080 4.0 250k"; do
  set -- $r
  rm -rf "$1" && mkdir -p "$1"
  ffmpeg -hide_banner -loglevel error \
    -f lavfi -i "testsrc2=size=${2}x${3}:rate=30:duration=6" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=6" \
    -vf "drawtext=fontfile=$font:text='Outpost demo  $1':fontsize=$(( $3 / 10 )):fontcolor=white:box=1:boxcolor=black@0.6:x=(w-tw)/2:y=h/8" \
    -c:v libx264 -profile:v high -level "$4" -preset veryslow -b:v "$5" -maxrate "$5" -bufsize "$5" \
    -g 60 -keyint_min 60 -sc_threshold 0 -pix_fmt yuv420p \
    -c:a aac -b:a 24k -ac 1 \
    -f hls -hls_time 2 -hls_list_size 0 -hls_segment_filename "$1/seg%d.ts" "$1/index.m3u8"
  rm "$1/index.m3u8"
done
ls -l */seg*.ts
