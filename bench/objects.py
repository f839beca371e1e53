#!/usr/bin/env python3
"""Object detection, measured side by side in one run (issue 14):

1. Inference: Candor's detector (`Ssd::detect`: normalisation, ONNX Runtime,
   score threshold and NMS) against onnxruntime from Python (PyPI, the same
   model, one thread each, its own NonMaxSuppression) on the same 50 real
   frames (300x300 RGB by ffmpeg): ms per frame and detections per second
   per core.
2. Whole pipeline: `candor run` (release) with one camera on a 640x360
   10 fps H.264 stream from the camera simulator, CPU of the recorder
   (utime+stime from /proc) over a window, for a busy scene (the walking
   clip: people constantly) and an idle one (a still frame of the same
   scene), with motion only and with motion + objects. Recording is in every
   figure (it is what the recorder does anyway), so the difference between
   the two modes is detection's cost.
3. Event latency: the frame that confirmed a person (its arrival time, the
   `after.frame_time` of the `new` message) to the MQTT message received by
   mosquitto_sub; cameras loop 10 s of walking then 10 s of a still frame.

    cargo build --release -p candor && cargo build --release -p candor-detect --example detect_frames
    python3 bench/objects.py [--window 30] [--latency-seconds 120] [--cameras 4]

The simulator is pinned to CPU 0 and the recorder to CPU 1. Needs ffmpeg,
mosquitto_sub and `pip install onnxruntime onnx numpy`. Prints Markdown.
"""
import argparse
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CANDOR = os.path.join(TARGET, "release", "candor")
DETECT = os.path.join(TARGET, "release", "examples", "detect_frames")
CLIP = os.path.join(ROOT, "assets/clips/vtest-h264-10s.mp4")
MODEL = os.path.join(ROOT, "models/ssd_mobilenet_v2_coco.onnx")
TICK = os.sysconf("SC_CLK_TCK")


def ort_lib():
    import onnxruntime
    return glob.glob(os.path.join(os.path.dirname(onnxruntime.__file__), "capi", "libonnxruntime.so.*"))[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def inference(work, passes):
    frames = os.path.join(work, "frames.rgb")
    ffmpeg("-i", CLIP, "-vf", "select=not(mod(n\\,2)),scale=300:300", "-fps_mode", "passthrough",
           "-frames:v", "50", "-f", "rawvideo", "-pix_fmt", "rgb24", frames)
    ref = os.path.join(ROOT, "crates/candor-detect/tests/ssd_reference.py")
    rows = []
    for _ in range(3):
        c = json.loads(subprocess.run(["taskset", "-c", "1", DETECT, ort_lib(), frames, "0.5", str(passes)],
                                      check=True, capture_output=True, text=True).stdout)
        p = json.loads(subprocess.run(["taskset", "-c", "1", sys.executable, ref, MODEL, frames, "0.5", str(passes)],
                                      check=True, capture_output=True, text=True).stdout)
        rows.append((c, p))
    c_ms = statistics.median(r[0]["median_ms"] for r in rows)
    p_ms = statistics.median(r[1]["median_ms"] for r in rows)
    per_frame = rows[0][0]["detections"] / rows[0][0]["frames"]
    print("| on 50 real frames, 1 thread, pinned to one core | ms per frame (median of 3 runs) | detections per frame | detections per second per core |")
    print("|---|---|---|---|")
    print(f"| Candor (`Ssd::detect`, ort + libonnxruntime) | {c_ms:.2f} | {per_frame:.2f} | {per_frame * 1000 / c_ms:.0f} |")
    pf = rows[0][1]["detections"] / rows[0][1]["frames"]
    print(f"| onnxruntime {__import__('onnxruntime').__version__} (Python, NonMaxSuppression op) | {p_ms:.2f} | {pf:.2f} | {pf * 1000 / p_ms:.0f} |")
    print(f"\nCandor / onnxruntime: **{c_ms / p_ms:.2f}×** the time per frame.\n")


def start_camsim(clip, cameras):
    port = free_port()
    sim = subprocess.Popen(["taskset", "-c", "0", CANDOR, "camsim", "--listen", f"127.0.0.1:{port}",
                            "--cameras", str(cameras), "--source", clip],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    sim.stdin.write("cam pass 1\n")
    sim.stdin.close()
    time.sleep(0.5)
    return sim, port


def recorder(work, port, cameras, objects, extra=""):
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "candor.toml")
    with open(cfg, "w") as f:
        f.write(f'[storage]\npath = "data"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n{extra}')
        f.write(f'[objects]\nruntime = "{ort_lib()}"\nthreads = 1\n')
        for i in range(cameras):
            f.write(f'\n[[cameras]]\nname = "cam{i}"\nurl = "rtsp://admin:cam%20pass%201@127.0.0.1:{port}/cam{i}"\n')
            f.write('[cameras.motion]\nenabled = true\n')
            if objects:
                f.write('[cameras.objects]\nenabled = true\n')
    log = open(os.path.join(work, "log"), "w")
    return subprocess.Popen(["taskset", "-c", "1", CANDOR, "run", "-c", cfg], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=log)


def pipeline(work, window, warmup):
    busy = os.path.join(work, "busy-640x360.mp4")
    idle = os.path.join(work, "idle-640x360.mp4")
    enc = ["-c:v", "libx264", "-profile:v", "main", "-bf", "0", "-g", "20", "-r", "10", "-b:v", "600k"]
    ffmpeg("-stream_loop", "2", "-i", CLIP, "-vf", "scale=640:360", *enc, busy)
    ffmpeg("-i", CLIP, "-vf", "trim=end_frame=1,loop=loop=299:size=1,setpts=N/10/TB,scale=640:360", *enc, idle)
    rows = []
    for scene, clip in [("busy (people constantly)", busy), ("idle (a still scene)", idle)]:
        for mode, objects in [("motion only", False), ("motion + objects", True)]:
            sim, port = start_camsim(clip, 1)
            rec = recorder(os.path.join(work, f"{scene[:4]}-{objects}"), port, 1, objects)
            try:
                time.sleep(warmup)
                c0, t0 = cpu_secs(rec.pid), time.time()
                time.sleep(window)
                c1, t1 = cpu_secs(rec.pid), time.time()
            finally:
                rec.terminate()
                rec.wait()
                sim.terminate()
                sim.wait()
            rows.append((scene, mode, 100 * (c1 - c0) / (t1 - t0)))
    print(f"| one camera, 640x360 10 fps H.264 (recording included) | `candor run`, % of a core over {window} s |")
    print("|---|---|")
    for scene, mode, p in rows:
        print(f"| {scene}, {mode} | {p:.1f} % |")
    by = {(s[:4], m): p for s, m, p in rows}
    print(f"\nDetection's own cost: busy **+{by[('busy', 'motion + objects')] - by[('busy', 'motion only')]:.1f}** points of a core, "
          f"idle **{by[('idle', 'motion + objects')] - by[('idle', 'motion only')]:+.1f}**.\n")


def latency(work, seconds, cameras):
    clip = os.path.join(work, "walk-then-still.mp4")
    ffmpeg("-i", CLIP, "-filter_complex",
           "[0:v]split[a][b];[b]trim=end_frame=1,loop=loop=99:size=1,setpts=N/10/TB[s];[a][s]concat=n=2:v=1",
           "-c:v", "libx264", "-bf", "0", "-g", "20", "-r", "10", "-b:v", "1200k", clip)
    prefix = f"candorobjbench{os.getpid()}"
    got = []
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-t", f"{prefix}/events"],
                           stdout=subprocess.PIPE, text=True)

    def read():
        for line in sub.stdout:
            got.append((time.time(), json.loads(line)))
    threading.Thread(target=read, daemon=True).start()
    sim, port = start_camsim(clip, cameras)
    rec = recorder(os.path.join(work, "latency"), port, cameras, True,
                   f'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\ntopic_prefix = "{prefix}"\n')
    try:
        time.sleep(seconds)
    finally:
        rec.terminate()
        rec.wait()
        sim.terminate()
        sub.terminate()
    lat = [(t - m["after"]["frame_time"]) * 1000 for t, m in got
           if m["type"] == "new" and m.get("after") and m["after"]["label"] == "person"]
    print(f"| confirming frame → MQTT `new` ({cameras} cameras, objects on, {seconds} s) | events | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|")
    if lat:
        print(f"| person | {len(lat)} | {statistics.median(lat):.1f} | {pct(lat, 99):.1f} | {max(lat):.1f} |")
    else:
        print("| person | 0 | – | – | – |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=4)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--latency-seconds", type=int, default=120)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--only", choices=["inference", "pipeline", "latency"])
    a = ap.parse_args()
    for p in (CANDOR, DETECT):
        if not os.path.exists(p):
            sys.exit(f"{p} is missing: cargo build --release -p candor && cargo build --release -p candor-detect --example detect_frames")
    work = tempfile.mkdtemp()
    if a.only in (None, "inference"):
        inference(work, a.passes)
    if a.only in (None, "pipeline"):
        pipeline(work, a.window, a.warmup)
    if a.only in (None, "latency"):
        latency(work, a.latency_seconds, a.cameras)


if __name__ == "__main__":
    main()
