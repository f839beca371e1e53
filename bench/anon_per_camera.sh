#!/bin/bash
# Anonymous memory of `candor run` after 20 s with N simulated 1080p cameras
# (/proc/PID/smaps_rollup), recorder on CPU 1, simulator on CPU 0.
# BENCHMARKS.md, "Frames written in batches; frame memory kept".
# usage: bench/anon_per_camera.sh EXE N   (CLIP_DIR: where the 1080p clip is)
set -u
EXE=$1; N=$2; D=$(mktemp -d)
taskset -c 0 $EXE camsim --listen 127.0.0.1:18600 --cameras $N --source ${CLIP_DIR:-$(dirname "$0")/../../shared/media}/vtest-1920x1080-15fps-h264-4mbps-30s.mp4 >/dev/null 2>&1 &
SIM=$!; sleep 1.5
printf '[storage]\npath = "."\nfsync_interval = "5s"\n' > $D/candor.toml
for i in $(seq 0 $((N-1))); do printf '\n[[cameras]]\nname = "cam%d"\nurl = "rtsp://127.0.0.1:18600/cam%d"\n' $i $i >> $D/candor.toml; done
chmod 600 $D/candor.toml
RUST_LOG=warn taskset -c 1 $EXE run -c $D/candor.toml >/dev/null 2>&1 &
P=$!; sleep 20
echo "$(basename $EXE) N=$N: $(grep -E '^(Rss|Anonymous):' /proc/$P/smaps_rollup | tr -s ' ' | tr '\n' ' ')"
kill $P; wait $P 2>/dev/null; kill $SIM; wait $SIM 2>/dev/null; rm -rf $D
