#!/usr/bin/env python3
"""Memory over time (issue 17): `candor run` recording N simulated cameras
that all reboot every minute, with the web app in use, for an hour or more.

    cargo build --release -p candor
    python3 bench/soak.py --minutes 60 --cameras 8 --out /tmp/soak.json

Every `--reboot-every` seconds the camera simulator is killed (SIGKILL, so
every RTSP session dies mid-stream, as when a camera loses power) and
started again. Meanwhile a signed-in admin does what the web app does: the
camera list and the System page every 10 s, one camera's spans every 30 s,
and once a minute 5 s of live view over the WebSocket (or a snapshot if the
Python `websockets` package is missing).

Once a minute the recorder's anonymous memory (RssAnon: heap and stacks,
what a leak grows; file-backed pages such as SQLite's shared WAL index are
not in it) and VmRSS are printed. At the end: the least-squares slope of
RssAnon over the last half of the run (KB per minute), and, from the
recorder's own index (`candor spans`), the share of the run each camera
recorded and the longest gap any camera had.

`--smaps DIR` copies the recorder's /proc/PID/smaps into DIR every
`--smaps-every` minutes; bench/smaps_diff.py then says which mapping grew
(the heap, a thread's stack, an anonymous mmap), which heaptrack cannot.

`--heaptrack FILE` runs the recorder under heaptrack (Debian `heaptrack`)
and kills it at the end, so that `heaptrack_print --print-leaks 1
FILE.zst` lists the heap as it was then, by allocation site: where the
memory went.
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import web_bench  # noqa: E402
from record_vs_ffmpeg import iso  # noqa: E402

CLIP = os.path.join(ROOT, "..", "shared", "media", "vtest-768x576-10fps-h264.mp4")


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("RssAnon", "VmRSS", "RssFile", "Threads"):
                out[k] = int(v.split()[0])
    return out


def recorder_pid(p):
    """The candor process itself: under heaptrack it is a child."""
    for _ in range(100):
        kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout.split()
        for k in kids:
            try:
                if os.path.basename(os.readlink(f"/proc/{k}/exe")) == "candor":
                    return int(k)
            except OSError:
                pass
        try:
            if os.path.basename(os.readlink(f"/proc/{p.pid}/exe")) == "candor":
                return p.pid
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the recorder did not start")


def slope(points):
    """Least squares, y per x."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0


async def live(rec, cam, seconds):
    try:
        import websockets
    except ImportError:
        rec.call("GET", f"api/v1/cameras/{cam}/snapshot.jpg", raw=True)
        return
    url = rec.base.replace("https", "wss") + f"api/v1/cameras/{cam}/live"
    async with websockets.connect(url, ssl=rec.ssl, max_size=None,
                                  additional_headers={"Authorization": f"Bearer {rec.token}"}) as ws:
        end = time.time() + seconds
        while time.time() < end:
            try:
                await asyncio.wait_for(ws.recv(), timeout=max(0.1, end - time.time()))
            except asyncio.TimeoutError:
                break


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--cameras", type=int, default=8)
    ap.add_argument("--reboot-every", type=float, default=60)
    ap.add_argument("--clip", default=CLIP)
    ap.add_argument("--sim-port", type=int, default=18554)
    ap.add_argument("--web-port", type=int, default=18443)
    ap.add_argument("--heaptrack")
    ap.add_argument("--smaps", help="directory: /proc/PID/smaps is copied there every --smaps-every minutes")
    ap.add_argument("--smaps-every", type=float, default=5)
    ap.add_argument("--out")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="candor-soak-")
    sim_cmd = [web_bench.CANDOR, "camsim", "--listen", f"127.0.0.1:{a.sim_port}",
               "--cameras", str(a.cameras), "--source", a.clip]
    sim = subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    if a.heaptrack:
        real = web_bench.CANDOR
        wrapper = os.path.join(work, "candor-under-heaptrack")
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nif [ "$1" = run ]; then exec heaptrack -o {a.heaptrack} {real} "$@"; fi\n'
                    f'exec {real} "$@"\n')
        os.chmod(wrapper, 0o755)
        web_bench.CANDOR = wrapper
    rec = web_bench.Recorder(work, a.cameras, a.sim_port, a.web_port)
    pid = recorder_pid(rec.p)
    start = time.time()
    end = start + a.minutes * 60
    next_reboot = start + a.reboot_every
    next_sample = start
    next_poll = start
    next_spans = start
    next_live = start + 5
    reboots = 0
    next_smaps = 0.0
    samples = []
    web_errors = 0
    print("minute  RssAnon_KB  VmRSS_KB  RssFile_KB  threads", flush=True)
    try:
        while time.time() < end:
            now = time.time()
            if now >= next_sample:
                m = mem(pid)
                samples.append(((now - start) / 60, m["RssAnon"]))
                print(f"{(now - start) / 60:6.1f}  {m['RssAnon']:10d}  {m['VmRSS']:8d}  {m['RssFile']:10d}  "
                      f"{m['Threads']:7d}", flush=True)
                next_sample += 60
                if a.smaps and (now - start) / 60 >= next_smaps:
                    os.makedirs(a.smaps, exist_ok=True)
                    shutil.copyfile(f"/proc/{pid}/smaps", os.path.join(a.smaps, f"smaps-{int(next_smaps):03d}"))
                    next_smaps += a.smaps_every
            if now >= next_reboot:
                sim.send_signal(signal.SIGKILL)
                sim.wait()
                sim = subprocess.Popen(sim_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                reboots += 1
                next_reboot += a.reboot_every
            try:
                if now >= next_poll:
                    rec.call("GET", "api/v1/cameras")
                    rec.call("GET", "api/v1/system")
                    next_poll += 10
                if now >= next_spans:
                    cam = f"cam{int(now) % a.cameras}"
                    rec.call("GET", f"api/v1/cameras/{cam}/spans")
                    next_spans += 30
                if now >= next_live:
                    asyncio.run(live(rec, f"cam{reboots % a.cameras}", 5))
                    next_live += 60
            except Exception as e:  # noqa: BLE001 - counted, the soak goes on
                web_errors += 1
                print(f"web request failed: {e}", file=sys.stderr)
            time.sleep(0.5)
        window = (start + 10, time.time() - 2)
        if a.heaptrack:
            # Killed, not stopped: what heaptrack then reports as "leaked"
            # is the heap as it was, by allocation site (a clean stop
            # frees it all first). The index is recovered at the next
            # open, as after any crash.
            os.kill(pid, signal.SIGKILL)
    finally:
        try:
            rec.stop()
        except Exception:  # noqa: BLE001 - killed above
            pass
        sim.send_signal(signal.SIGKILL)
        sim.wait()

    covered, worst_gap = [], 0.0
    for i in range(a.cameras):
        out = subprocess.run([web_bench.CANDOR, "spans", "-c", rec.cfg, "--camera", f"cam{i}", "--json"],
                             capture_output=True, text=True)
        spans = sorted((iso(s["start"]), iso(s["end"])) for s in json.loads(out.stdout)["spans"])
        c, t = 0.0, window[0]
        for s, e in spans:
            s, e = max(s, window[0]), min(e, window[1])
            if e <= s:
                continue
            worst_gap = max(worst_gap, s - t)
            c += e - s
            t = max(t, e)
        worst_gap = max(worst_gap, window[1] - t)
        covered.append(c / (window[1] - window[0]))
    half = [p for p in samples if p[0] >= samples[-1][0] / 2]
    result = {
        "minutes": a.minutes,
        "cameras": a.cameras,
        "reboots": reboots,
        "web_errors": web_errors,
        "rss_anon_kb_first": samples[0][1],
        "rss_anon_kb_last": samples[-1][1],
        "slope_kb_per_min_last_half": round(slope(half), 2),
        "slope_kb_per_min_all_after_5min": round(slope([p for p in samples if p[0] >= 5]), 2),
        "coverage_worst_camera": round(min(covered), 4),
        "coverage_mean": round(sum(covered) / len(covered), 4),
        "worst_gap_s": round(worst_gap, 2),
        "samples": samples,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=1))
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
