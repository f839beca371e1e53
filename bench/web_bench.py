#!/usr/bin/env python3
"""Web benchmarks, side by side where there is an alternative, in one run:

1. Live view, server side: frame received from the camera -> written to the
   viewer's WebSocket, p50/p99, from the recorder's own histogram
   (/metrics, candor_live_frame_latency_seconds), with 1 viewer and with
   VIEWERS viewers on CAMERAS cameras.
2. Live view, receipt to display in Chromium: requestVideoFrameCallback's
   expected display time minus the recorder's receipt time of that frame
   (bench/glass.mjs), p50/p99.
3. VIEWERS WebSocket clients on CAMERAS cameras: recorder CPU and RSS
   compared with the same recorder with no viewers.
4. Export of one hour of one 4 Mbit/s camera: time to first byte and total,
   vs `ffmpeg -f concat -c copy` of the same hour stored as 1-minute MP4
   segments (what an ffmpeg-based NVR would have on disk). Page cache
   dropped before each.

    cargo build --release -p candor && cargo build --release -p candor-storage --example fill
    python3 bench/web_bench.py --clip ../shared/media/vtest-1920x1080-15fps-h264-4mbps-30s.mp4

The simulator runs on CPU 0, the recorder on CPU 1. Needs: websockets (pip),
ffmpeg, node with e2e/node_modules, /usr/bin/chromium. Prints Markdown.
"""
import argparse
import asyncio
import http.cookiejar
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from record_vs_ffmpeg import cpu_secs, rss_bytes  # noqa: E402

TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
CANDOR = os.path.join(TARGET, "release", "candor")
FILL = os.path.join(TARGET, "release", "examples", "fill")
PASSWORD = "bench password 1"


class Recorder:
    def __init__(self, work, cameras, sim_port, web_port, name="rec"):
        self.data = os.path.join(work, name)
        os.makedirs(self.data, exist_ok=True)
        self.cfg = os.path.join(self.data, "candor.toml")
        with open(self.cfg, "w") as f:
            f.write(f'[storage]\npath = "."\n[web]\nlisten = "127.0.0.1:{web_port}"\n')
            for i in range(cameras):
                f.write(f'\n[[cameras]]\nname = "cam{i}"\nurl = "rtsp://127.0.0.1:{sim_port}/cam{i}"\n')
        subprocess.run([CANDOR, "user", "add", "admin", "--role", "admin", "-c", self.cfg],
                       input=PASSWORD + "\n", text=True, check=True, capture_output=True)
        self.p = subprocess.Popen(["taskset", "-c", "1", CANDOR, "run", "-c", self.cfg],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.data, "log"), "w"),
                                  env={**os.environ, "RUST_LOG": "warn"})
        self.base = f"https://127.0.0.1:{web_port}/"
        cert = os.path.join(self.data, "tls", "cert.pem")
        for _ in range(100):
            if os.path.exists(cert):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        self.ssl = ssl.create_default_context(cafile=cert)
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.ssl),
                                                  urllib.request.HTTPCookieProcessor(jar))
        r = self.call("POST", "api/v1/login", {"username": "admin", "password": PASSWORD})
        self.csrf = r["csrf_token"]
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        self.token = self.call("POST", "api/v1/tokens", {"name": "bench"})["token"]

    def call(self, method, path, body=None, raw=False):
        req = urllib.request.Request(self.base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if getattr(self, "csrf", None):
            req.add_header("X-CSRF-Token", self.csrf)
        with self.opener.open(req, timeout=600) as r:
            data = r.read()
        return data if raw else json.loads(data)

    def histogram(self):
        text = self.call("GET", "metrics", raw=True).decode()
        out = []
        for line in text.splitlines():
            if line.startswith("candor_live_frame_latency_seconds_bucket"):
                le = line.split('le="')[1].split('"')[0]
                out.append((float("inf") if le == "+Inf" else float(le), int(line.rsplit(" ", 1)[1])))
        return out

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=60)


def quantiles(h0, h1):
    """p50/p99 bucket bounds (ms) of the observations between two scrapes."""
    d = [(le, c1 - c0) for (le, c0), (_, c1) in zip(h0, h1)]
    total = d[-1][1]
    if not total:
        return None, None, 0
    res = []
    for q in (0.5, 0.99):
        want = q * total
        res.append(next(le * 1000 for le, c in d if c >= want))
    return res[0], res[1], total


async def viewers(rec, cams, n, seconds):
    import websockets
    counts = [0] * n
    skipped = [0] * n
    ctx = rec.ssl

    async def one(i):
        url = rec.base.replace("https", "wss") + f"api/v1/cameras/cam{i % cams}/live"
        async with websockets.connect(url, ssl=ctx, max_size=None,
                                      additional_headers={"Authorization": f"Bearer {rec.token}"}) as ws:
            end = time.time() + seconds
            while time.time() < end:
                try:
                    m = await asyncio.wait_for(ws.recv(), timeout=end - time.time())
                except asyncio.TimeoutError:
                    break
                if isinstance(m, bytes):
                    counts[i] += 1
                elif '"skipped"' in m:
                    skipped[i] += json.loads(m)["frames"]

    await asyncio.gather(*(one(i) for i in range(n)))
    return counts, skipped


def window(rec, seconds, f=None):
    c0, t0 = cpu_secs([rec.p.pid]), time.time()
    result = f() if f else time.sleep(seconds)
    c1, t1 = cpu_secs([rec.p.pid]), time.time()
    return (c1 - c0) / (t1 - t0), rss_bytes([rec.p.pid]), result


def drop_caches():
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def export_bench(args, work):
    data = os.path.join(work, "hour")
    t = time.time()
    subprocess.run([FILL, data, "hour", args.clip, str(args.export_secs)], check=True)
    fill_s = time.time() - t
    # Point a recorder with no cameras at the filled store.
    cfgdir = data
    with open(os.path.join(cfgdir, "candor.toml"), "w") as f:
        f.write(f'[storage]\npath = "."\n[web]\nlisten = "127.0.0.1:{args.web_port + 2}"\n')
    subprocess.run([CANDOR, "user", "add", "admin", "--role", "admin", "-c", os.path.join(cfgdir, "candor.toml")],
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    p = subprocess.Popen([CANDOR, "run", "-c", os.path.join(cfgdir, "candor.toml")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    spans = json.loads(subprocess.run([CANDOR, "spans", "-c", os.path.join(cfgdir, "candor.toml"), "--camera", "hour", "--json"],
                                      capture_output=True, text=True, check=True).stdout)["spans"]
    a, b = spans[0]["start"], spans[-1]["end"]
    base = f"https://127.0.0.1:{args.web_port + 2}/api/v1/"
    cert = os.path.join(cfgdir, "tls", "cert.pem")
    jar = os.path.join(work, "jar")
    subprocess.run(["curl", "-sS", "--cacert", cert, "-c", jar, "-H", "Content-Type: application/json",
                    "-d", json.dumps({"username": "admin", "password": PASSWORD}), base + "login"],
                   check=True, capture_output=True)
    out = os.path.join(work, "candor-hour.mp4")
    cold = drop_caches()
    r = subprocess.run(["curl", "-sS", "--fail", "--cacert", cert, "-b", jar, "-o", out, "-w",
                        "%{time_starttransfer} %{time_total} %{size_download}",
                        base + f"cameras/hour/export.mp4?from={a}&to={b}"], capture_output=True, text=True, check=True)
    ttfb, total, size = r.stdout.split()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    dur = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", out],
                               capture_output=True, text=True).stdout)
    # The same hour as 1-minute MP4 segments, then ffmpeg's concat demuxer.
    segdir = os.path.join(work, "segs")
    os.makedirs(segdir)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-stream_loop", "-1", "-i", args.clip, "-c", "copy",
                    "-t", str(args.export_secs), "-f", "segment", "-segment_time", "60", "-reset_timestamps", "1",
                    os.path.join(segdir, "s%04d.mp4")], check=True)
    lst = os.path.join(work, "list.txt")
    with open(lst, "w") as f:
        for n in sorted(os.listdir(segdir)):
            f.write(f"file '{os.path.join(segdir, n)}'\n")
    results = {}
    for flags, label in ([], "ffmpeg concat"), (["-movflags", "+faststart"], "ffmpeg concat +faststart"):
        fout = os.path.join(work, "ffmpeg-hour.mp4")
        if os.path.exists(fout):
            os.remove(fout)
        drop_caches()
        t0 = time.time()
        q = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", lst,
                              "-c", "copy", *flags, fout])
        first = None
        while q.poll() is None:
            if first is None and os.path.exists(fout) and os.path.getsize(fout) > 0:
                first = time.time() - t0
            time.sleep(0.002)
        tot = time.time() - t0
        results[label] = (first if first is not None else tot, tot, os.path.getsize(fout))
    return {"candor": (float(ttfb), float(total), int(size), dur), "ffmpeg": results, "cold": cold, "fill_s": fill_s}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", required=True)
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--export-secs", type=int, default=3600)
    ap.add_argument("--web-port", type=int, default=18443)
    ap.add_argument("--sim-port", type=int, default=18554)
    ap.add_argument("--skip", nargs="*", default=[], choices=["live", "glass", "export"])
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="candor-web-bench-")
    rows = []

    class Rows(list):
        def append(self, r):
            super().append(r)
            print("| " + " | ".join(r) + " |", file=sys.stderr, flush=True)

    rows = Rows()
    try:
        if "live" not in args.skip or "glass" not in args.skip:
            sim = subprocess.Popen(["taskset", "-c", "0", CANDOR, "camsim", "--listen", f"127.0.0.1:{args.sim_port}",
                                    "--cameras", str(args.cameras), "--source", args.clip],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
            rec = Recorder(work, args.cameras, args.sim_port, args.web_port)
            time.sleep(5)
            if "live" not in args.skip:
                cpu0, rss0, _ = window(rec, 20)
                rows.append(("Recorder, no viewers", f"{cpu0 * 100:.1f}% of a core", f"{rss0 / 1e6:.1f} MB", ""))
                h0 = rec.histogram()
                cpu1, rss1, (counts, skipped) = window(rec, 0, lambda: asyncio.run(viewers(rec, args.cameras, 1, 20)))
                p50, p99, n = quantiles(h0, rec.histogram())
                rows.append(("1 viewer: server-side latency", f"p50 <= {p50:.2f} ms, p99 <= {p99:.2f} ms", f"{n} frames", ""))
                h0 = rec.histogram()
                cpuN, rssN, (counts, skipped) = window(
                    rec, 0, lambda: asyncio.run(viewers(rec, args.cameras, args.viewers, args.seconds)))
                p50, p99, n = quantiles(h0, rec.histogram())
                fps = statistics.mean(counts) / args.seconds
                rows.append((f"{args.viewers} viewers on {args.cameras} cameras: server-side latency",
                             f"p50 <= {p50:.2f} ms, p99 <= {p99:.2f} ms", f"{n} frames", ""))
                rows.append((f"{args.viewers} viewers on {args.cameras} cameras: recorder",
                             f"{cpuN * 100:.1f}% of a core (+{(cpuN - cpu0) * 100:.1f} points over no viewers)",
                             f"{rssN / 1e6:.1f} MB (+{(rssN - rss0) / 1e6:.1f} MB)",
                             f"{fps:.1f} fps per viewer, {sum(skipped)} frames skipped in all"))
            if "glass" not in args.skip:
                g = subprocess.run(["node", os.path.join(ROOT, "bench", "glass.mjs"), rec.base, "admin", PASSWORD, "cam0"],
                                   capture_output=True, text=True, timeout=300)
                if g.returncode == 0:
                    v = json.loads(g.stdout.strip().splitlines()[-1])
                    rows.append((f"Receipt -> display in Chromium ({os.path.basename(args.clip)})",
                                 f"p50 {v['p50']:.0f} ms, p99 {v['p99']:.0f} ms", f"{v['n']} frames",
                                 f"player {v['buffer_lag_p50']:.0f} ms behind its newest frame (p50); "
                                 f"Chromium dropped {v['dropped']} of {v['total']} frames"))
                else:
                    rows.append(("Receipt -> display in Chromium", "failed", g.stderr[-300:], ""))
            rec.stop()
            sim.send_signal(signal.SIGTERM)
            sim.wait()
        if "export" not in args.skip:
            e = export_bench(args, work)
            ttfb, total, size, dur = e["candor"]
            rows.append((f"Export {dur / 60:.0f} min ({size / 1e9:.2f} GB): Candor", f"first byte {ttfb * 1000:.0f} ms",
                         f"total {total:.1f} s", "cold cache" if e["cold"] else "warm cache"))
            for label, (first, tot, sz) in e["ffmpeg"].items():
                rows.append((f"Export: {label}", f"first byte {first * 1000:.0f} ms", f"total {tot:.1f} s",
                             f"Candor total is {tot / total:.1f}x faster" if total < tot else f"{total / tot:.1f}x slower"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| measurement | result | | |\n|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
