#!/usr/bin/env python3
"""Where a recorder's CPU goes, side by side: `perf record -g` files split
into the same buckets (issue 17's profiles), one column per file.

    python3 bench/perf_split.py floor=/tmp/prof/floor-1.perf candor=/tmp/prof/candor-1.perf ...

Made with `bench/record_vs_ffmpeg.py --pairs K --profile 'perf record -q -g
-F 999 -o /tmp/prof/{who}-{round}.perf -p {pid} -- sleep 15'`, so every
contender is profiled in its own window of the same run. With LABEL=A+B+C
the files are summed (several rounds of one contender).

Kernel samples are charged to the system call on their stack (the kernel
keeps frame pointers), so socket reads, file writes and fdatasync are told
apart; user-space samples by their leaf symbol only, since the Rust code is
built without frame pointers and a caller chain is not reliable.
"""
import collections, re, subprocess, sys

KERNEL_CALLS = [
    ("reading sockets (read / readv)", re.compile(r"\b(do_readv|ksys_read|__x64_sys_read|__x64_sys_recvfrom|__sys_recvfrom)\b")),
    ("writing files (write / writev)", re.compile(r"\b(do_writev|ksys_write|__x64_sys_write)\b")),
    ("fdatasync", re.compile(r"\b(__x64_sys_fdatasync|__x64_sys_fsync|do_fsync)\b")),
    ("waiting for sockets (epoll_wait)", re.compile(r"\b(do_epoll_wait|__x64_sys_epoll_wait|__x64_sys_epoll_pwait)\b")),
    ("page faults", re.compile(r"\b(exc_page_fault|asm_exc_page_fault|do_user_addr_fault)\b")),
]
OTHER_CALL = re.compile(r"\b__x64_sys_(\w+)")

USER = [
    ("CRC-32 of each record", re.compile(r"crc32fast")),
    ("retina: RTSP/RTP parsing, depacketizing, Annex B scan", re.compile(r"retina::|memchr::|h264_reader|rtsp_types")),
    ("memmove (retina's frame assembly, mostly)", re.compile(r"__memmove|__memcpy|memcpy")),
    ("malloc / free", re.compile(r"malloc|_int_free|cfree|__libc_free|unlink_chunk|sysmalloc|tcache")),
    ("clock reads", re.compile(r"clock_gettime|__vdso|jiff::|Instant|SystemTime")),
    ("tokio runtime and channels", re.compile(r"tokio::|mio::|futures_|parking_lot|std::sync")),
    ("Candor's own (ingest, writer, index)", re.compile(r"candor_")),
    ("SQLite", re.compile(r"sqlite3|rusqlite")),
    ("libc system call stubs", re.compile(r"__GI___readv|__GI___writev|epoll_wait|__libc_read|__libc_write|fdatasync|__GI___read|__GI___write")),
]


def split(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"],
                         capture_output=True, text=True, check=True).stdout
    buckets, threads, total = collections.Counter(), collections.Counter(), 0
    for sample in out.split("\n\n"):
        lines = [l for l in sample.splitlines() if l.strip()]
        if len(lines) < 2:
            continue
        comm, frames = lines[0].strip(), lines[1:]
        total += 1
        threads[comm] += 1
        if "[kernel.kallsyms]" in frames[0]:
            stack = "\n".join(frames)
            for name, pat in KERNEL_CALLS:
                if pat.search(stack):
                    buckets["kernel: " + name] += 1
                    break
            else:
                buckets["kernel: other system calls" if OTHER_CALL.search(stack)
                        else "kernel: other (interrupts, softirq, scheduler)"] += 1
            continue
        leaf = frames[0]
        for name, pat in USER:
            if pat.search(leaf):
                buckets["user: " + name] += 1
                break
        else:
            buckets["user: other"] += 1
    return buckets, threads, total


def main():
    cols = []
    for arg in sys.argv[1:]:
        label, paths = arg.split("=", 1)
        b, t, n = collections.Counter(), collections.Counter(), 0
        for p in paths.split("+"):
            pb, pt, pn = split(p)
            b.update(pb); t.update(pt); n += pn
        cols.append((label, b, t, n))
    if not cols:
        sys.exit(__doc__)
    names = sorted({k for _, b, _, _ in cols for k in b},
                   key=lambda k: (not k.startswith("kernel"), -max(b[k] for _, b, _, _ in cols)))
    print("| samples (1 ms of one core each) | " + " | ".join(c[0] for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for k in names:
        print(f"| {k} | " + " | ".join(f"{b[k]} ({100 * b[k] / max(n, 1):.1f} %)" for _, b, _, n in cols) + " |")
    for side in ("kernel", "user"):
        print(f"| **all {side}** | " + " | ".join(
            f"**{sum(v for k, v in b.items() if k.startswith(side))}**" for _, b, _, _ in cols) + " |")
    print("| **all** | " + " | ".join(f"**{n}**" for _, _, _, n in cols) + " |")
    print()
    for label, _, t, n in cols:
        print(f"{label} by thread: " + ", ".join(f"{c} {v}" for c, v in t.most_common()))


if __name__ == "__main__":
    main()
