#!/usr/bin/env python3
"""Which mappings of a process grew between two /proc/PID/smaps copies
(bench/soak.py --smaps DIR). Anonymous memory by kind: [heap] (glibc's
main arena), [stack], other anonymous mappings grouped by size (thread
stacks are 2 MiB + guard, glibc's extra arenas 64 MiB, large mallocs
their own size), and file-backed private pages written to (counted as
anonymous by the kernel too).

    python3 bench/smaps_diff.py DIR/smaps-005 DIR/smaps-030
"""
import sys
from collections import defaultdict


def parse(path):
    maps = []
    cur = None
    with open(path) as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                name = parts[5] if len(parts) > 5 else ""
                cur = {"lo": lo, "size": (hi - lo) // 1024, "name": name, "perms": parts[1]}
                maps.append(cur)
            elif parts[0] in ("Rss:", "Anonymous:", "Private_Dirty:") and cur is not None:
                cur[parts[0][:-1]] = int(parts[1])
    return maps


def kind(m):
    if m["name"] in ("[heap]", "[stack]"):
        return m["name"]
    if m["name"].startswith("/"):
        return "file " + m["name"].rsplit("/", 1)[-1]
    if m["name"]:
        return m["name"]
    return f"anon {m['perms']} {m['size']} KiB"


def totals(maps):
    t = defaultdict(lambda: [0, 0])
    for m in maps:
        k = kind(m)
        t[k][0] += m.get("Anonymous", 0)
        t[k][1] += 1
    return t


def main():
    a, b = (totals(parse(p)) for p in sys.argv[1:3])
    rows = []
    for k in set(a) | set(b):
        x, y = a.get(k, [0, 0]), b.get(k, [0, 0])
        if x[0] or y[0]:
            rows.append((y[0] - x[0], k, x, y))
    rows.sort(key=lambda r: -abs(r[0]))
    print(f"{'anonymous KB':>12} {'before':>8} {'after':>8} {'maps':>9}  kind")
    for d, k, x, y in rows:
        print(f"{d:+12d} {x[0]:8d} {y[0]:8d} {x[1]:4d}->{y[1]:<4d}  {k}")
    print(f"{sum(r[0] for r in rows):+12d} {sum(r[2][0] for r in rows):8d} {sum(r[3][0] for r in rows):8d}  total")


if __name__ == "__main__":
    main()
