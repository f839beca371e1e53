#!/usr/bin/env python3
"""Event latency: camera event → MQTT message received (mosquitto_sub on the
real broker) and → webhook delivered (a local HTTP receiver), p50/p99.

    cargo build --release -p candor
    python3 bench/event_latency.py [--onvif-events 100] [--motion-seconds 120] [--cameras 8]

Two sources:
- ONVIF: the simulated camera is told to raise motion (HTTP control); the
  clock starts when that request returns, so the figure includes the
  camera's PullPoint answer, the recorder's parsing, the index write and the
  integrations.
- Motion (Candor's detector): cameras loop 10 s of people walking then 10 s
  of a still frame, so events start every 20 s. The clock starts at the
  event's start time, which is when the frame that confirmed the motion
  arrived; the figure covers decoding, analysis, snapshot JPEGs, index and
  file writes, and delivery. (Detection itself needs motion in 3 of 5
  analysed frames: 0.4-0.8 s at 5 fps after motion appears; that is a design
  choice against single-frame noise, stated here rather than hidden.)
Everything runs on this machine, so all clocks are one clock.
"""
import argparse
import http.server
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CANDOR = os.path.join(TARGET, "release", "candor")
CLIP = os.path.join(ROOT, "assets/clips/vtest-h264-10s.mp4")


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def parse_time(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--onvif-events", type=int, default=100)
    ap.add_argument("--motion-seconds", type=int, default=120)
    ap.add_argument("--cameras", type=int, default=8)
    a = ap.parse_args()
    work = tempfile.mkdtemp()
    clip = os.path.join(work, "walk-then-still.mp4")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", CLIP, "-filter_complex",
                    "[0:v]split[a][b];[b]trim=end_frame=1,loop=loop=99:size=1,setpts=N/10/TB[s];[a][s]concat=n=2:v=1",
                    "-c:v", "libx264", "-bf", "0", "-g", "20", "-r", "10", "-b:v", "1200k", clip], check=True)

    # Receivers first: MQTT subscriber and webhook endpoint, stamping arrivals.
    prefix = f"candorbench{os.getpid()}"
    arrivals = {"mqtt": [], "webhook": []}
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-t", f"{prefix}/events"],
                           stdout=subprocess.PIPE, text=True)

    def read_mqtt():
        for line in sub.stdout:
            arrivals["mqtt"].append((time.time(), json.loads(line)))
    threading.Thread(target=read_mqtt, daemon=True).start()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            arrivals["webhook"].append((time.time(), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass
    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()

    rtsp, onvif, disc = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    sim = subprocess.Popen(["taskset", "-c", "0", CANDOR, "camsim", "--listen", f"127.0.0.1:{rtsp}",
                            "--cameras", str(a.cameras), "--source", clip,
                            "--onvif", f"127.0.0.1:{onvif}", "--discovery", f"127.0.0.1:{disc}"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    sim.stdin.write("cam pass 1\n")
    sim.stdin.close()
    cfg = os.path.join(work, "candor.toml")
    with open(cfg, "w") as f:
        f.write(f'[storage]\npath = "data"\n[web]\nlisten = "127.0.0.1:{free_port()}"\n')
        f.write(f'[mqtt]\nurl = "mqtt://127.0.0.1:1883"\ntopic_prefix = "{prefix}"\n')
        f.write(f'[[webhooks]]\nurl = "http://127.0.0.1:{hook.server_port}/hook"\nsecret = "bench secret 0123456789"\n')
        for i in range(a.cameras):
            f.write(f'\n[[cameras]]\nname = "cam{i}"\nurl = "rtsp://admin:cam%20pass%201@127.0.0.1:{rtsp}/cam{i}"\n')
            if i == 0:
                f.write(f'onvif = "http://127.0.0.1:{onvif}/onvif/cam0/device_service"\n')
            f.write('[cameras.motion]\nenabled = true\n')
    log = open(os.path.join(work, "log"), "w")
    rec = subprocess.Popen(["taskset", "-c", "1", CANDOR, "run", "-c", cfg], stdout=subprocess.DEVNULL,
                           stderr=log, env={**os.environ, "RUST_LOG": "info"})
    try:
        for _ in range(300):
            if "following ONVIF events" in open(os.path.join(work, "log")).read():
                break
            time.sleep(0.1)
        else:
            sys.exit("the recorder never subscribed to ONVIF events: " + os.path.join(work, "log"))
        time.sleep(1)

        # ONVIF: raise and clear motion, stamping each raise.
        raised = []
        ctl = f"http://127.0.0.1:{onvif}/control/cam0/motion/"
        for _ in range(a.onvif_events):
            urllib.request.urlopen(urllib.request.Request(ctl + "on", method="POST")).read()
            raised.append(time.time())
            time.sleep(0.4)
            urllib.request.urlopen(urllib.request.Request(ctl + "off", method="POST")).read()
            time.sleep(0.4)
        time.sleep(1)

        def onvif_lat(kind):
            starts = [t for t, m in arrivals[kind] if m["type"] == "new" and m["event"]["source"] == "onvif"]
            lat = []
            for r in raised:
                nxt = [t for t in starts if t >= r]
                if nxt:
                    lat.append((min(nxt) - r) * 1000)
            return lat

        mark = time.time()
        time.sleep(a.motion_seconds)

        def motion_lat(kind):
            return [(t - parse_time(m["event"]["start"])) * 1000 for t, m in arrivals[kind]
                    if m["type"] == "new" and m["event"]["source"] == "motion" and t >= mark]

        rows = [("ONVIF event → MQTT", onvif_lat("mqtt")), ("ONVIF event → webhook", onvif_lat("webhook")),
                ("motion detected → MQTT", motion_lat("mqtt")), ("motion detected → webhook", motion_lat("webhook"))]
        print(f"| path | events | p50 ms | p99 ms | max ms |  ({a.cameras} cameras with motion detection)")
        print("|---|---|---|---|---|")
        for name, lat in rows:
            if lat:
                print(f"| {name} | {len(lat)} | {statistics.median(lat):.1f} | {pct(lat, 99):.1f} | {max(lat):.1f} |")
            else:
                print(f"| {name} | 0 | – | – | – |")
    finally:
        rec.terminate()
        rec.wait()
        sim.terminate()
        sub.terminate()


if __name__ == "__main__":
    main()
