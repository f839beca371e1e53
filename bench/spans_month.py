#!/usr/bin/env python3
"""What listing a month of one camera's footage costs (issue 17's memory
work): `candor spans` over an index holding 31 days of one-minute segments
of a 15 fps camera, each with its frame index, timed and its peak memory
(max RSS) read, for each binary given, side by side in one run.

    cargo build --release -p candor
    python3 bench/spans_month.py --candor OLD=/tmp/candor-before --candor NEW=$CARGO_TARGET_DIR/release/candor

The web app's timeline asks for the same thing (`/api/v1/cameras/{name}/spans`
defaults to the last 31 days). The index is made by the first binary's
`candor run` (schema, camera row), then filled with synthetic closed
segments whose frame indexes have the real encoding (varint of duration<<1
| key, varint of size; one key frame every 2 s), so that a reader that
decodes them pays what it would on a real month. No segment files exist:
a read-only `candor spans` never opens a closed segment's file.

`--run SECONDS` also starts each binary's `candor run` on that index (its
one camera unreachable) for SECONDS and reports its CPU time and peak
memory: what recovery at start and retention every 10 s cost over a
month of footage. Each segment then gets a sparse file of its length, so
that recovery finds the footage where the index says it is. `--max-age`
gives the camera an age limit.
"""
import argparse
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import web_bench  # noqa: E402

FPS = 15
SEGMENT_S = 60


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def make_index(candor, work, days, sparse_files=False, max_age=None):
    cfg = os.path.join(work, "candor.toml")
    with open(cfg, "w") as f:
        f.write('[storage]\npath = "."\n[web]\nlisten = "127.0.0.1:18499"\n'
                '[[cameras]]\nname = "cam0"\nurl = "rtsp://127.0.0.1:9/cam0"\n')
        if max_age:
            f.write(f'max_age = "{max_age}"\n')
    subprocess.run([candor, "user", "add", "admin", "--role", "admin", "-c", cfg],
                   input=web_bench.PASSWORD + "\n", text=True, check=True, capture_output=True)
    p = subprocess.Popen([candor, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = os.path.join(work, "index.db")
    for _ in range(100):
        if os.path.exists(db):
            break
        time.sleep(0.1)
    time.sleep(2)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)

    con = sqlite3.connect(db)
    cam = con.execute("SELECT id FROM camera WHERE name = 'cam0'").fetchone()
    if cam is None:
        con.execute("INSERT INTO camera (name) VALUES ('cam0')")
        cam = con.execute("SELECT id FROM camera WHERE name = 'cam0'").fetchone()
    cam = cam[0]
    con.execute("INSERT OR IGNORE INTO sample_entry (codec, width, height, data) VALUES ('avc1.640028', 1920, 1080, x'000000106176633166616b65')")
    entry = con.execute("SELECT id FROM sample_entry ORDER BY id LIMIT 1").fetchone()[0]
    per_seg = FPS * SEGMENT_S
    dur = 90_000 // FPS
    blob = bytearray()
    file_len = 0
    for i in range(per_seg):
        key = i % (2 * FPS) == 0
        size = 120_000 if key else 30_000 + (i * 37) % 4000
        blob += varint(dur << 1 | int(key)) + varint(size)
        file_len += 16 + size
    blob = bytes(blob)
    start = int((time.time() - days * 86400) * 90_000)
    seg_90k = SEGMENT_S * 90_000
    n = days * 86400 // SEGMENT_S
    con.executemany(
        "INSERT INTO segment (camera_id, state, run_start, start_90k, wall_duration_90k, media_duration_90k, "
        "frames, file_len, sample_entry_id, frame_index) VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((cam, int(i == 0), start + i * seg_90k, seg_90k, seg_90k, per_seg, file_len, entry, blob)
         for i in range(n)))
    con.commit()
    if sparse_files:
        d = os.path.join(work, "segments", str(cam))
        os.makedirs(d, exist_ok=True)
        for (sid,) in con.execute("SELECT id FROM segment WHERE camera_id = ?", (cam,)):
            with open(os.path.join(d, f"{sid:010d}.seg"), "wb") as f:
                f.truncate(file_len)
    con.close()
    return cfg, n, len(blob) * n


def proc_figures(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    mem = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                mem[k] = int(v.split()[0])
    return cpu, mem["VmHWM"], mem["VmRSS"]


def run_for(candor, cfg, seconds):
    """`candor run` on the month: CPU seconds, peak and final RSS (KB)."""
    p = subprocess.Popen([candor, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds)
        if p.poll() is not None:
            sys.exit(f"{candor} run exited early ({p.returncode})")
        return proc_figures(p.pid)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)


def measure(candor, cfg):
    t = time.time()
    r = subprocess.run(["/usr/bin/time", "-v", candor, "spans", "-c", cfg, "--camera", "cam0", "--json"],
                       capture_output=True, text=True)
    wall = time.time() - t
    if r.returncode != 0:
        sys.exit(f"{candor} spans failed: {r.stderr[-2000:]}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return wall, rss, r.stdout.count('"start"')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candor", action="append", required=True, metavar="LABEL=PATH")
    ap.add_argument("--days", type=int, default=31)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--run", type=float, metavar="SECONDS",
                    help="also run each binary's `candor run` on the month this long")
    ap.add_argument("--max-age", metavar="AGE",
                    help="the camera's max_age (e.g. 40d: retention's age rule, which deletes nothing "
                         "of a 31-day month, walks to its horizon every pass)")
    a = ap.parse_args()
    bins = [c.split("=", 1) for c in a.candor]
    with tempfile.TemporaryDirectory(prefix="candor-spans-") as work:
        cfg, n, blobs = make_index(bins[0][1], work, a.days, sparse_files=bool(a.run), max_age=a.max_age)
        size = os.path.getsize(os.path.join(work, "index.db"))
        print(f"{a.days} days: {n} segments, {n * FPS * SEGMENT_S:,} frames, frame indexes {blobs / 1e6:.0f} MB, "
              f"index.db {size / 1e6:.0f} MB")
        print("| binary | wall s (best of %d) | max RSS MB | spans |" % a.rounds)
        print("|---|---|---|---|")
        for label, path in bins:
            runs = [measure(path, cfg) for _ in range(a.rounds)]
            print(f"| {label} | {min(w for w, _, _ in runs):.2f} | {max(r for _, r, _ in runs) / 1024:.0f} | {runs[0][2]} |",
                  flush=True)
        if a.run:
            print(f"\n`candor run` on the month for {a.run:.0f} s (recovery at start, retention every 10 s):")
            print("| binary | CPU s | peak RSS MB | RSS at the end MB |")
            print("|---|---|---|---|")
            for label, path in bins:
                cpu, hwm, rss = run_for(path, cfg, a.run)
                print(f"| {label} | {cpu:.2f} | {hwm / 1024:.0f} | {rss / 1024:.0f} |", flush=True)


if __name__ == "__main__":
    main()
