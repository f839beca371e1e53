#!/usr/bin/env python3
"""Motion detection cost per camera, side by side with ffmpeg decoding the
same stream (the first step any detector built on ffmpeg, like Frigate's,
pays before it looks at a pixel).

    cargo build --release -p candor-motion --example scan
    python3 bench/motion_cpu.py [--source ../shared/media/vtest-768x576-10fps-h264.mp4]

Makes camera-like sub streams from the source with ffmpeg (640x360 at 5 fps,
and the source itself), then for each: Candor's scanner (openh264 decode of
every frame + analysis at 5 fps) and `ffmpeg -threads 1 -f null` (decode
only), each run 3 times, CPU seconds (user + system) by getrusage. Reports
the share of one core a real-time camera costs and cameras per core. Prints
a Markdown table for BENCHMARKS.md.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
SCAN = os.path.join(TARGET, "release/examples/scan")


def child_cpu(cmd):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def make(src, out, vf, fps, gop, rate):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", src, "-an", "-vf", f"{vf},fps={fps}",
                    "-c:v", "libx264", "-profile:v", "main", "-bf", "0", "-g", str(gop),
                    "-b:v", rate, "-movflags", "+faststart", out], check=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=os.path.join(ROOT, "../shared/media/vtest-768x576-10fps-h264.mp4"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    if not os.path.exists(a.source):
        a.source = os.path.join(ROOT, "assets/clips/vtest-h264-10s.mp4")
    tmp = tempfile.mkdtemp()
    clips = []
    sub = os.path.join(tmp, "sub-640x360-5fps.mp4")
    make(a.source, sub, "scale=640:360", 5, 10, "400k")
    clips.append(("sub stream 640x360, 5 fps", sub))
    clips.append(("source as is", a.source))
    rows = []
    for label, clip in clips:
        c_cpu, f_cpu, info = [], [], None
        for _ in range(a.runs):
            cpu, out = child_cpu([SCAN, clip, "5"])
            info = json.loads(out)
            c_cpu.append(cpu)
            cpu, _ = child_cpu(["ffmpeg", "-v", "error", "-threads", "1", "-i", clip, "-an", "-f", "null", "-"])
            f_cpu.append(cpu)
        dur = info["duration_s"]
        c, f = statistics.median(c_cpu), statistics.median(f_cpu)
        rows.append((label, info, dur, c, f))
    print("| stream | frames (analysed) | Candor motion, % of a core | cameras per core | ffmpeg decode only, % of a core | Candor / ffmpeg |")
    print("|---|---|---|---|---|---|")
    for label, info, dur, c, f in rows:
        print(f"| {label}: {info['width']}x{info['height']}, {info['frames'] / dur:.0f} fps, {dur:.0f} s "
              f"| {info['decoded']} ({info['analysed']}) | {100 * c / dur:.2f} % | {dur / c:.0f} "
              f"| {100 * f / dur:.2f} % | {c / f:.2f} |")


if __name__ == "__main__":
    main()
