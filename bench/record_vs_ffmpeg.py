#!/usr/bin/env python3
"""Recording cost, side by side: Candor vs one `ffmpeg -c copy -f segment`
process per camera vs the floor (bench/floor.c: the same RTSP/TCP bytes read
and written to a file, no parsing), on the same simulated cameras, in one
run.

    cargo build --release -p candor
    python3 bench/record_vs_ffmpeg.py --clip ../shared/media/vtest-1920x1080-15fps-h264-4mbps-30s.mp4 \
        --counts 16 64 --max-search 96 128 160 --seconds 40

The simulator runs pinned to CPU 0; the recorder (or all ffmpeg processes)
pinned to CPU 1, so "per core" means what it says. CPU time is read from
/proc/PID/stat (utime+stime) over a steady-state window after a warm-up;
memory is VmRSS. Frame loss is judged from the recorder's own index: the
recorded seconds per camera over the window must match wall time.
"Machine CPU ratio" compares whole-machine busy time minus the simulator's
during each window, which also counts kernel threads (writeback, softirq)
working for the recorder: fair to a tool that never fsyncs and so leaves its
writeback to kernel threads. Prints a Markdown table (paste into BENCHMARKS.md).
"""
import argparse
import statistics
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_secs(pids):
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICK
        except FileNotFoundError:
            pass
    return total


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


def start_camsim(candor, clip, n, port):
    # Each simulated camera starts at a random point of its frame interval,
    # as real ones do; --aligned-phases paces them all from their PLAY, so
    # that a recorder starting its sessions together gets every frame in one
    # burst (which flattered retina alone by half on 2026-12-04).
    aligned = ["--aligned-phases"] if start_camsim.aligned else []
    p = subprocess.Popen(
        ["taskset", "-c", "0", candor, "camsim", "--listen", f"127.0.0.1:{port}", "--cameras", str(n), "--source", clip] + aligned,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    return p


def machine_busy():
    """Busy CPU seconds of the whole machine (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / TICK


def measure(pids, warmup, seconds, sim_pid=None, profile=None):
    """CPU of `pids`, and of the whole machine minus the simulator: the latter
    also counts kernel threads (writeback, softirq) working for the recorder,
    which the per-process figure misses for a tool that never fsyncs.
    `profile`, a shell command, runs from the window's start (its own cost
    is in the figures)."""
    time.sleep(warmup)
    prof = subprocess.Popen(profile, shell=True) if profile else None
    c0, m0, s0, t0 = cpu_secs(pids), machine_busy(), cpu_secs([sim_pid]) if sim_pid else 0, time.time()
    time.sleep(seconds)
    c1, m1, s1, t1 = cpu_secs(pids), machine_busy(), cpu_secs([sim_pid]) if sim_pid else 0, time.time()
    measure.machine = (m1 - m0) - (s1 - s0)
    if prof:
        prof.wait()
    return c1 - c0, t1 - t0, rss_bytes(pids)


def run_candor(candor, n, port, warmup, seconds, work, sim_pid=None, fsync="5s", profile=None):
    data = os.path.join(work, f"candor-{n}-{fsync}")
    os.makedirs(data)
    cfg = os.path.join(data, "candor.toml")
    with open(cfg, "w") as f:
        f.write(f'[storage]\npath = "."\nfsync_interval = "{fsync}"\n')
        for i in range(n):
            f.write(f'\n[[cameras]]\nname = "cam{i}"\nurl = "rtsp://127.0.0.1:{port}/cam{i}"\n')
    p = subprocess.Popen(["taskset", "-c", "1", candor, "run", "-c", cfg],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(data, "log"), "w"),
                         env={**os.environ, "RUST_LOG": "warn"})
    window_start = time.time() + warmup
    time.sleep(warmup)
    s0 = cpu_secs([sim_pid]) if sim_pid else 0.0
    cpu, wall, rss = measure([p.pid], 0, seconds, sim_pid, profile and profile.format(pid=p.pid, n=n))
    machine = measure.machine
    sim_cpu = (cpu_secs([sim_pid]) - s0) / wall if sim_pid else 0.0
    window_end = time.time()
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    # Frame loss check: recorded time inside the window, per camera.
    worst = None
    for i in range(n):
        out = subprocess.run([candor, "spans", "-c", cfg, "--camera", f"cam{i}", "--json"],
                             capture_output=True, text=True)
        spans = json.loads(out.stdout)["spans"] if out.returncode == 0 else []
        covered = 0.0
        for s in spans:
            a = max(iso(s["start"]), window_start)
            b = min(iso(s["end"]), window_end - 2.0)  # last ~2 s may still be in flight
            covered += max(0.0, b - a)
        frac = covered / max(1e-9, (window_end - 2.0 - window_start))
        worst = frac if worst is None else min(worst, frac)
    du = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(data) for f in fs)
    shutil.rmtree(data)
    return cpu, wall, rss, worst, sim_cpu, machine


def iso(s):
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def run_ffmpeg(n, port, warmup, seconds, work, sim_pid=None):
    out = os.path.join(work, f"ffmpeg-{n}")
    os.makedirs(out)
    procs = []
    for i in range(n):
        procs.append(subprocess.Popen(
            ["taskset", "-c", "1", "ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
             "-i", f"rtsp://127.0.0.1:{port}/cam{i}", "-c", "copy", "-f", "segment", "-segment_time", "60",
             "-reset_timestamps", "1", os.path.join(out, f"cam{i}-%05d.mp4")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    cpu, wall, rss = measure([p.pid for p in procs], warmup, seconds, sim_pid)
    machine = measure.machine
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(out)
    return cpu, wall, rss, machine


def build_floor(work):
    """The floor program (bench/floor.c), built with the machine's C compiler."""
    exe = os.path.join(work, "floor")
    subprocess.run(["cc", "-O2", "-D_GNU_SOURCE", "-o", exe, os.path.join(ROOT, "bench", "floor.c")], check=True)
    return exe


def run_floor(exe, n, port, warmup, seconds, work, sim_pid=None, fsync=None, profile=None):
    """The floor: one process reading every camera's RTSP/TCP bytes into a
    buffer and writing them to one file per camera, no parsing; with `fsync`
    (seconds), one fdatasync per file per interval, as the recorder does."""
    out = os.path.join(work, f"floor-{n}-{fsync}")
    os.makedirs(out)
    args = ["taskset", "-c", "1", exe, "127.0.0.1", str(port), str(n), out]
    if fsync:
        args += ["--fsync", str(fsync)]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"floor-{n}.log"), "w"))
    cpu, wall, rss = measure([p.pid], warmup, seconds, sim_pid, profile and profile.format(pid=p.pid, n=n))
    machine = measure.machine
    alive = p.poll() is None
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    written = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    shutil.rmtree(out)
    if not alive:
        sys.exit(f"the floor program stopped early (see {work}/floor-{n}.log)")
    return cpu, wall, rss, machine, written


def run_sink(exe, n, port, warmup, seconds, work, sim_pid=None, shape="", profile=None):
    """Retina alone (crates/candor-recorder/examples/retina_sink.rs): every
    camera's session set up as the recorder does, each frame demuxed and
    dropped; nothing written. With `write`, each frame is appended as
    Candor's record (header, CRC-32, one writev) to a file per camera on the
    session's own task, with an fdatasync every 5 s: retina plus the least
    writing Candor's format needs, and none of Candor's own layer. With
    `packets,write`, retina's depacketizer is skipped: each access unit's
    RTP payloads are written as they came, as one record (the least a
    depacketizer of Candor's own on retina's packet stream could cost)."""
    write = "write" in shape
    out = os.path.join(work, f"sink-{n}-out")
    os.makedirs(out, exist_ok=True)
    env = {**os.environ, "SINK_SHAPE": shape, "SINK_OUT": out}
    p = subprocess.Popen(["taskset", "-c", "1", exe, f"127.0.0.1:{port}", str(n)], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"sink-{n}.log"), "w"))
    cpu, wall, rss = measure([p.pid], warmup, seconds, sim_pid, profile and profile.format(pid=p.pid, n=n))
    alive = p.poll() is None
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=30)
    # A session that fails ends alone while the others go on: every camera
    # must have written, or the CPU per camera would be flattered.
    empty = [i for i in range(n) if not os.path.exists(os.path.join(out, f"cam{i}"))
             or os.path.getsize(os.path.join(out, f"cam{i}")) == 0]
    shutil.rmtree(out)
    if not alive:
        sys.exit(f"retina_sink stopped early (see {work}/sink-{n}.log)")
    if write and empty:
        sys.exit(f"retina_sink wrote nothing for {len(empty)} camera(s), e.g. cam{empty[0]} (see {work}/sink-{n}.log)")
    return cpu, wall, rss


def pairs(a):
    """Candor and the floor, alternating, K times per count on one simulator:
    the ratio of each adjacent pair, then the median. Noise from neighbours
    on a shared VM lasts minutes, so pairs close in time share most of it.
    With --retina-sink, retina alone runs third in each round and retina
    with writing fourth; with --packets too, retina's packets with writing
    fifth. With --candor-b, a second Candor build runs right after the
    floor in each round (an A/B of a change: its ratio to the floor and to
    the first build, and both builds' resident memory)."""
    work = tempfile.mkdtemp(prefix="candor-bench-")
    floor_exe = build_floor(work)
    per = lambda cpu, n, wall: cpu / n / (wall / 60)
    sink_cols = (" retina alone | retina alone / floor | retina + writing | retina + writing / floor | Candor / (retina + writing) |"
                 if a.retina_sink else "")
    pkt_cols = " retina packets + writing | packets + writing / floor |" if a.packets else ""
    b_cols = " Candor B | B / floor | B / Candor | RSS MB, Candor / B | B recorded |" if a.candor_b else ""
    print(f"| cameras | pair | Candor CPU s / camera-minute | floor | Candor / floor |{sink_cols}{pkt_cols}{b_cols} Candor recorded |")
    print("|---|---|---|---|---|" + ("---|---|---|---|---|" if a.retina_sink else "")
          + ("---|---|" if a.packets else "") + ("---|---|---|---|---|" if a.candor_b else "") + "---|")
    for n in a.counts:
        sim = start_camsim(a.candor, a.clip, n, a.port)
        # A round 0 that is not counted: in three runs on 2026-12-04 the first
        # Candor window after the simulator started took 0.110-0.137 CPU s
        # per camera-minute at 64 cameras, against 0.077-0.116 in the same
        # build's later rounds, which biased every first pair.
        w = run_candor(a.candor, n, a.port, a.warmup, a.seconds, work, sim.pid)
        print(f"warm-up round, not counted: Candor {per(w[0], n, w[1]):.3f} CPU s / camera-minute",
              file=sys.stderr, flush=True)
        ratios, sink_ratios, write_ratios, own_ratios, pkt_ratios = [], [], [], [], []
        b_ratios, ba_ratios = [], []
        for k in range(a.pairs):
            # With --pairs, --profile runs in every contender's window:
            # {who} names it (candor, floor, sink, write, packets, candor-b)
            # and {round} the round, so that the profiles are side by side.
            prof = lambda who: a.profile and a.profile.replace("{who}", who).replace("{round}", str(k + 1))
            c = run_candor(a.candor, n, a.port, a.warmup, a.seconds, work, sim.pid, profile=prof("candor"))
            fl = run_floor(floor_exe, n, a.port, a.warmup, a.seconds, work, sim.pid, fsync=5, profile=prof("floor"))
            cc, lc = per(c[0], n, c[1]), per(fl[0], n, fl[1])
            ratios.append(cc / lc)
            sink = ""
            if a.retina_sink:
                r = run_sink(a.retina_sink, n, a.port, a.warmup, a.seconds, work, sim.pid, profile=prof("sink"))
                rc = per(r[0], n, r[1])
                sink_ratios.append(rc / lc)
                w = run_sink(a.retina_sink, n, a.port, a.warmup, a.seconds, work, sim.pid, shape="write",
                             profile=prof("write"))
                wc = per(w[0], n, w[1])
                write_ratios.append(wc / lc)
                own_ratios.append(cc / wc)
                sink = f" {rc:.3f} | {rc / lc:.2f}x | {wc:.3f} | {wc / lc:.2f}x | {cc / wc:.2f}x |"
                if a.packets:
                    pk = run_sink(a.retina_sink, n, a.port, a.warmup, a.seconds, work, sim.pid,
                                  shape="packets,write", profile=prof("packets"))
                    pc = per(pk[0], n, pk[1])
                    pkt_ratios.append(pc / lc)
                    sink += f" {pc:.3f} | {pc / lc:.2f}x |"
            if a.candor_b:
                b = run_candor(a.candor_b, n, a.port, a.warmup, a.seconds, work, sim.pid, profile=prof("candor-b"))
                bc = per(b[0], n, b[1])
                b_ratios.append(bc / lc)
                ba_ratios.append(bc / cc)
                sink += (f" {bc:.3f} | {bc / lc:.2f}x | {bc / cc:.2f}x | {c[2] / 2**20:.0f} / {b[2] / 2**20:.0f} |"
                         f" {b[3] * 100:.1f}% |")
            print(f"| {n} | {k + 1} | {cc:.3f} | {lc:.3f} | {cc / lc:.2f}x |{sink} {c[3] * 100:.1f}% |", flush=True)
        sim.terminate(); sim.wait()
        med = lambda v: f"**{statistics.median(v):.2f}x** (from {min(v):.2f} to {max(v):.2f})"
        sink = (f" | {med(sink_ratios)} | | {med(write_ratios)} | {med(own_ratios)} |"
                if a.retina_sink else "")
        if a.packets:
            sink += f" | {med(pkt_ratios)} |"
        if a.candor_b:
            sink += f" | {med(b_ratios)} | {med(ba_ratios)} | | |"
        print(f"| {n} | **median** | | | **{statistics.median(ratios):.2f}x** (from {min(ratios):.2f} to {max(ratios):.2f}) |{sink} |", flush=True)
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--candor", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "candor"))
    ap.add_argument("--clip", required=True)
    ap.add_argument("--counts", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--max-search", type=int, nargs="*", default=[],
                    help="extra camera counts for Candor alone, to find the most one core sustains")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--warmup", type=float, default=8)
    ap.add_argument("--port", type=int, default=18554)
    ap.add_argument("--no-fsync-too", action="store_true",
                    help="also run Candor with fsync_interval = 1h, i.e. ffmpeg's durability (kernel writeback only)")
    ap.add_argument("--only-candor", action="store_true",
                    help="Candor alone at each count (no ffmpeg, no floor): for comparing builds or profiling")
    ap.add_argument("--profile", help="a command run during Candor's window, with {pid} and {n}, e.g. "
                    "'perf record -g -F 999 -o /tmp/candor-{n}.perf -p {pid} -- sleep 20' (its own cost is in the figures); "
                    "with --pairs, in every contender's window, with {who} and {round} too, e.g. "
                    "'perf record -g -F 999 -o /tmp/{who}-{round}.perf -p {pid} -- sleep 15'")
    ap.add_argument("--pairs", type=int, default=0,
                    help="instead of the table: K alternating Candor / floor runs (both fsync every 5 s) at each count, "
                    "each pair's ratio and their median (a single window on a shared VM moves by up to 2x)")
    ap.add_argument("--retina-sink", metavar="EXE",
                    help="with --pairs: also run retina alone (cargo build --release -p candor-recorder "
                    "--example retina_sink; pass its path), every frame demuxed and dropped, and retina "
                    "writing each frame as Candor's record in place")
    ap.add_argument("--candor-b", metavar="EXE",
                    help="with --pairs: a second Candor build to compare, run in each round after the floor")
    ap.add_argument("--packets", action="store_true",
                    help="with --retina-sink: also run retina's RTP packet stream with no depacketizer, each "
                    "access unit's payloads written as one record: prices a depacketizer of Candor's own on retina")
    ap.add_argument("--aligned-phases", action="store_true",
                    help="pace every simulated camera from its PLAY (camsim --aligned-phases) instead of a random "
                    "point of its frame interval: shows what phase-aligned cameras flatter")
    a = ap.parse_args()
    if a.packets and not (a.pairs and a.retina_sink):
        ap.error("--packets needs --pairs and --retina-sink")
    if a.candor_b and not a.pairs:
        ap.error("--candor-b needs --pairs")
    start_camsim.aligned = a.aligned_phases
    if a.pairs:
        return pairs(a)
    if a.only_candor:
        a.max_search = a.counts + a.max_search
        a.counts = []
    work = tempfile.mkdtemp(prefix="candor-bench-")
    floor_exe = build_floor(work)
    rows = []
    for n in a.counts:
        sim = start_camsim(a.candor, a.clip, n, a.port)
        c = run_candor(a.candor, n, a.port, a.warmup, a.seconds, work, sim.pid, profile=a.profile and a.profile.replace("{who}", "candor"))
        nf = run_candor(a.candor, n, a.port, a.warmup, a.seconds, work, sim.pid, "1h") if a.no_fsync_too else None
        f = run_ffmpeg(n, a.port, a.warmup, a.seconds, work, sim.pid)
        fl = run_floor(floor_exe, n, a.port, a.warmup, a.seconds, work, sim.pid, fsync=5)
        fl_nf = run_floor(floor_exe, n, a.port, a.warmup, a.seconds, work, sim.pid) if a.no_fsync_too else None
        sim.terminate(); sim.wait()
        rows.append((n, c, f, nf, fl, fl_nf))
        print(f"N={n}: candor cpu {c[0]:.2f}s/{c[1]:.1f}s rss {c[2]/1e6:.1f}MB recorded {c[3]*100:.1f}% | "
              f"ffmpeg cpu {f[0]:.2f}s rss {f[2]/1e6:.1f}MB | floor cpu {fl[0]:.2f}s wrote {fl[4]/1e6:.0f}MB",
              file=sys.stderr)
    extra = []
    for n in a.max_search:
        sim = start_camsim(a.candor, a.clip, n, a.port)
        c = run_candor(a.candor, n, a.port, a.warmup, a.seconds, work, sim.pid, profile=a.profile and a.profile.replace("{who}", "candor"))
        sim.terminate(); sim.wait()
        extra.append((n, c))
        print(f"N={n}: candor cpu {c[0]:.2f}s/{c[1]:.1f}s rss {c[2]/1e6:.1f}MB recorded {c[3]*100:.1f}%", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)

    print("| cameras | Candor CPU s / camera-minute | ffmpeg | floor | Candor / floor | ffmpeg / floor | ffmpeg / Candor | machine CPU ffmpeg / Candor | Candor RSS / camera | ffmpeg RSS / camera | Candor recorded |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    per = lambda x, n, wall: x / n / (wall / 60)
    for n, c, f, nf, fl, fl_nf in rows:
        for label, cand, floor in [(f"{n} (fsync every 5 s; floor too)", c, fl),
                                   (f"{n}, without fsync (Candor and floor)", nf, fl_nf)]:
            if not cand:
                continue
            cc, fc, lc = per(cand[0], n, cand[1]), per(f[0], n, f[1]), per(floor[0], n, floor[1])
            mr = f[3] / max(cand[5], 1e-9)
            print(f"| {label} | {cc:.3f} | {fc:.3f} | {lc:.3f} | {cc / lc:.2f}x | {fc / lc:.1f}x | {fc / cc:.1f}x | {mr:.1f}x "
                  f"| {cand[2] / n / 1e6:.2f} MB | {f[2] / n / 1e6:.1f} MB | {cand[3] * 100:.1f}% |")
    if extra:
        print()
        print("| cameras (Candor alone) | recorder CPU of one core | RSS / camera | recorded | camsim CPU of one core |")
        print("|---|---|---|---|---|")
        for n, c in extra:
            print(f"| {n} | {c[0] / c[1] * 100:.0f}% | {c[2] / n / 1e6:.2f} MB | {c[3] * 100:.1f}% | {c[4] * 100:.0f}% |")


if __name__ == "__main__":
    main()
