#!/usr/bin/env python3
"""The recorder under attack, while it records: connection floods,
slowloris, and a wrong-password flood. Reports frames lost, camera
reconnects, the recorder's CPU and RSS during each attack, and how long a
legitimate user on another address needs to log in during the password
flood.

    cargo build --release -p candor
    python3 bench/under_attack.py [--cameras 4] [--idle 2000] [--seconds 30]

Frames lost: per camera, the frames written during the attack window are
compared with the frames the simulator sent in it (its fixed frame rate
times the window), and the recorder's own reconnect counter must not move.
Connections come from 127.0.0.2 ... 127.0.0.41 (loopback addresses), so both
the per-address cap (64) and the global cap (1024) are exercised. Prints a
Markdown table (paste into BENCHMARKS.md).
"""
import argparse
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "candor")


def cpu_secs(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Api:
    def __init__(self, port, cert):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cert)
        self.ctx.check_hostname = False
        self.cookie = None

    def call(self, method, path, body=None, source="127.0.0.1", cookies=None):
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=30,
                                        source_address=(source, 0))
        headers = {"Content-Type": "application/json"}
        jar = cookies if cookies is not None else ([self.cookie] if self.cookie else [])
        if jar:
            headers["Cookie"] = "; ".join(jar)
        c.request(method, "/api/v1/" + path, body=json.dumps(body) if body is not None else None, headers=headers)
        r = c.getresponse()
        data = r.read()
        set_cookies = [h.split(";")[0] for k, h in r.getheaders() if k.lower() == "set-cookie"]
        c.close()
        return r.status, (json.loads(data) if data[:1] == b"{" else {}), set_cookies

    def login(self, user, password, source="127.0.0.1", cookies=None):
        t = time.monotonic()
        status, v, jar = self.call("POST", "login", {"username": user, "password": password}, source, cookies or [])
        return status, time.monotonic() - t, jar


REFUSED = []


def frames(api):
    # The monitoring client is a legitimate user too: count the times the
    # recorder would not take its connection, and retry.
    for _ in range(100):
        try:
            s, v, _ = api.call("GET", "cameras")
            return {c["name"]: (c["frames_written"], c["reconnects"], c["fps"]) for c in v["cameras"]}
        except (OSError, ssl.SSLError):
            REFUSED.append(time.monotonic())
            time.sleep(0.1)
    raise SystemExit("the recorder refused the admin for 10 s")


def window(api, pid, seconds, attack=None):
    """Runs `attack` (a callable started in a thread) for `seconds`; returns
    frames per camera, reconnects, CPU share and peak RSS over the window."""
    stop = threading.Event()
    t = None
    if attack:
        t = threading.Thread(target=attack, args=(stop,), daemon=True)
        t.start()
        time.sleep(2)  # let the attack build up
    f0, c0, t0 = frames(api), cpu_secs(pid), time.monotonic()
    peak, peak_fds = 0.0, 0
    while time.monotonic() - t0 < seconds:
        peak, peak_fds = max(peak, rss_mb(pid)), max(peak_fds, fds(pid))
        time.sleep(0.5)
    f1, c1, t1 = frames(api), cpu_secs(pid), time.monotonic()
    stop.set()
    if t:
        t.join(timeout=30)
    wall = t1 - t0
    return {
        "frames": {n: f1[n][0] - f0[n][0] for n in f1},
        "reconnects": sum(f1[n][1] - f0[n][1] for n in f1),
        "cpu": (c1 - c0) / wall * 100,
        "rss": peak,
        "fds": peak_fds,
        "wall": wall,
    }


def idle_flood(port, n, sources, slow, held):
    def attack(stop):
        socks = []
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        for i in range(n):
            src = sources[i % len(sources)]
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
                s = ctx.wrap_socket(s)
                s.setblocking(False)
                socks.append(s)
            except (OSError, ssl.SSLError):
                pass
        slows = []
        for i in range(slow):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=("127.0.0.250", 0))
                s = ctx.wrap_socket(s)
                s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
                slows.append(s)
            except (OSError, ssl.SSLError):
                pass
        held.append((len(socks), len(slows)))
        while not stop.is_set():
            for s in list(slows):
                try:
                    s.sendall(b"X")
                except OSError:
                    slows.remove(s)
            time.sleep(1)
        alive = 0
        for s in socks:
            try:
                if s.recv(1) != b"":
                    alive += 1
            except ssl.SSLWantReadError:
                alive += 1
            except OSError:
                pass
            s.close()
        held.append((alive, len(slows)))
        for s in slows:
            s.close()
    return attack


def password_flood(api, sources, results):
    def attack(stop):
        def worker(src):
            n = 0
            while not stop.is_set():
                try:
                    st, _, _ = api.call("POST", "login", {"username": "admin", "password": "wrong guess %d" % n}, src, [])
                    results.append(st)
                except OSError:
                    results.append(0)
                n += 1
        ts = [threading.Thread(target=worker, args=(s,), daemon=True) for s in sources for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    return attack


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--slow", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=30)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} missing: cargo build --release -p candor")
    d = tempfile.mkdtemp(prefix="candor-attack-")
    sim = subprocess.Popen([BIN, "camsim", "--listen", "127.0.0.1:0", "--cameras", str(a.cameras)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rtsp = None
    for line in sim.stdout:
        if "rtsp://" in line:
            rtsp = line[line.index("rtsp://"):].split()[0]
            break
    base = rtsp.rsplit("/", 1)[0]
    cfg = os.path.join(d, "candor.toml")
    with open(cfg, "w") as f:
        f.write(f'[storage]\npath = "{d}/data"\n\n[web]\nlisten = "127.0.0.1:0"\n')
        for i in range(a.cameras):
            f.write(f'\n[[cameras]]\nname = "cam{i}"\nurl = "{base}/cam{i}"\n')
    for user in ["admin", "ops"]:
        subprocess.run([BIN, "user", "add", user, "--role", "admin", "-c", cfg], input=f"{user} password 1\n",
                       text=True, check=True, capture_output=True)
    log = open(os.path.join(d, "candor.log"), "w")
    rec = subprocess.Popen([BIN, "run", "-c", cfg], stderr=log, env=dict(os.environ, RUST_LOG="warn,candor=info"))
    port = None
    for _ in range(100):
        time.sleep(0.2)
        text = open(os.path.join(d, "candor.log")).read()
        if "web: https://" in text:
            port = int(text.split("web: https://")[1].split("/")[0].rsplit(":", 1)[1])
            break
    if port is None:
        sys.exit("the recorder did not start; see " + os.path.join(d, "candor.log"))
    print(f"recorder on port {port}, pid {rec.pid}", file=sys.stderr, flush=True)
    api = Api(port, os.path.join(d, "data/tls/cert.pem"))
    st, _, jar = api.login("ops", "ops password 1")
    assert st == 200, st
    api.cookie = [c for c in jar if c.startswith("__Host-candor_session")][0]
    ops_device = [c for c in jar if c.startswith("__Host-candor_device")]
    time.sleep(8)
    frames(api)  # the rate is measured between two calls at least 2 s apart
    time.sleep(3)
    fps = {n: v[2] for n, v in frames(api).items()}
    rows = []
    print("baseline window", file=sys.stderr, flush=True)
    base_w = window(api, rec.pid, a.seconds)
    print("connection flood window", file=sys.stderr, flush=True)
    rows.append(("baseline (no attack)", base_w, ""))
    held = []
    sources = [f"127.0.0.{i}" for i in range(2, 42)]
    w = window(api, rec.pid, a.seconds, idle_flood(port, a.idle, sources, a.slow, held))
    rows.append((f"{a.idle} idle TLS connections from 40 addresses + {a.slow} slowloris", w,
                 f"held open at start: {held[0][0]} idle, {held[0][1]} slow; at the end: {held[-1][0]} idle, {held[-1][1]} slow"))
    print("password flood window", file=sys.stderr, flush=True)
    results = []
    logins = []

    def legit(stop):
        time.sleep(3)
        # A user on another address, whose browser signed in before (device cookie) ...
        st, secs, _ = api.login("admin", "admin password 1", "127.0.0.200", ops_device and [])
        logins.append(("admin, new browser, other address", st, secs))
        st, secs, _ = api.login("ops", "ops password 1", "127.0.0.201", ops_device)
        logins.append(("ops, known browser, other address", st, secs))

    flood = password_flood(api, sources[:8], results)

    def both(stop):
        t = threading.Thread(target=legit, args=(stop,), daemon=True)
        t.start()
        flood(stop)
        t.join()

    w = window(api, rec.pid, a.seconds, both)
    counts = {}
    for r in results:
        counts[r] = counts.get(r, 0) + 1
    rate = len(results) / w["wall"]
    rows.append(("wrong-password flood for `admin`, 32 clients on 8 addresses", w,
                 f"{len(results)} attempts ({rate:.0f}/s): " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))))
    print(f"\n{a.cameras} cameras ({', '.join(f'{v:.1f}' for v in fps.values() if v)} fps), {a.seconds} s windows, release build\n")
    print("| window | frames written per camera (expected at the camera's rate) | frames lost | camera reconnects | recorder CPU | peak RSS | peak open fds |")
    print("|---|---|---|---|---|---|---|")
    for name, w, _ in rows:
        exp = {n: fps[n] * w["wall"] for n in w["frames"] if fps.get(n)}
        lost = sum(max(0, round(exp[n] - w["frames"][n]) - 1) for n in exp)
        per = ", ".join(f"{w['frames'][n]} ({exp.get(n, 0):.0f})" for n in sorted(w["frames"]))
        print(f"| {name} | {per} | {lost} | {w['reconnects']} | {w['cpu']:.1f}% | {w['rss']:.1f} MB | {w['fds']} |")
    print()
    for name, _, note in rows:
        if note:
            print(f"- {name}: {note}")
    if REFUSED:
        print(f"- the monitoring admin's connection was refused {len(REFUSED)} time(s) (global cap reached)")
    for who, st, secs in logins:
        print(f"- during the password flood, {who}: HTTP {st} in {secs * 1000:.0f} ms")
    rec.terminate()
    rec.wait()
    sim.terminate()


if __name__ == "__main__":
    main()
