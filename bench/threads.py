#!/usr/bin/env python3
"""Per-thread context switches and CPU of one process over a window: whose
wake-ups a recorder pays (issue 17's profile counts them only in total).

    python3 bench/threads.py PID SECONDS
    # during a recording benchmark's window:
    python3 bench/record_vs_ffmpeg.py --clip CLIP --only-candor --counts 64 \
        --profile 'python3 bench/threads.py {pid} 15'

Reads /proc/PID/task/*/status (voluntary and involuntary switches) and
stat (utime + stime, in clock ticks) before and after.
"""
import os, sys, time
pid, secs = sys.argv[1], float(sys.argv[2])
def snap():
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            st = open(f"/proc/{pid}/task/{t}/status").read()
            comm = open(f"/proc/{pid}/task/{t}/comm").read().strip()
            stat = open(f"/proc/{pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        v = int(st.split("voluntary_ctxt_switches:")[1].split()[0])
        nv = int(st.split("nonvoluntary_ctxt_switches:")[1].split()[0])
        cpu = int(stat[11]) + int(stat[12])
        out[t] = (comm, v, nv, cpu)
    return out
a = snap(); time.sleep(secs); b = snap()
tot = [0, 0, 0]
for t, (comm, v, nv, cpu) in sorted(b.items()):
    if t in a:
        dv, dn, dc = v - a[t][1], nv - a[t][2], cpu - a[t][3]
    else:
        dv, dn, dc = v, nv, cpu
    tot[0] += dv; tot[1] += dn; tot[2] += dc
    if dv + dn > 0:
        print(f"{t:>8} {comm:<20} vol/s {dv/secs:8.1f} nonvol/s {dn/secs:7.1f} cpu_ticks {dc}")
print(f"total vol/s {tot[0]/secs:.1f} nonvol/s {tot[1]/secs:.1f} cpu_ticks {tot[2]}")
