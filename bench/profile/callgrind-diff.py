#!/usr/bin/env python3
"""Per-function instruction deltas between two callgrind files (e.g. main vs branch).

    bench/profile/callgrind-diff.py [--requests N] [--inclusive] [--top K] BEFORE AFTER

Runs `callgrind_annotate --threshold=100` on both files, keys every function by its
name (not its file or binary, so two builds compare), and prints the K
functions whose instruction counts changed the most (per request when --requests is
given: the count callgrind.sh measured). Exclusive (self) counts by default; with
--inclusive, counts include callees (then a caller and its callees each show a delta).
"""
import argparse
import re
import subprocess
import sys

LINE = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.*?)(?:\s+\[[^\]]*\])?\s*$")


def counts(path, inclusive):
    args = ["callgrind_annotate", "--auto=no", "--threshold=100", path]
    if inclusive:
        args.insert(1, "--inclusive=yes")
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    total, funcs, body = 0, {}, False
    for line in out.splitlines():
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
        if "file:function" in line:
            body = True
            continue
        if body and not line.strip():
            break  # the function table ends here
        m = LINE.match(line) if body else None
        if m:
            # Key by the function alone: the file callgrind names is where the
            # instructions were inlined from, which differs between builds.
            name = m.group(2).split(":", 1)[-1]
            funcs[name] = funcs.get(name, 0) + int(m.group(1).replace(",", ""))
    return total, funcs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=1)
    p.add_argument("--inclusive", action="store_true")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("before")
    p.add_argument("after")
    a = p.parse_args()
    tb, fb = counts(a.before, a.inclusive)
    ta, fa = counts(a.after, a.inclusive)
    n = a.requests
    print(f"total per request: before {tb / n:,.0f}, after {ta / n:,.0f}, delta {(ta - tb) / n:+,.0f}")
    deltas = sorted(
        ((fa.get(k, 0) - fb.get(k, 0), k) for k in set(fa) | set(fb)),
        key=lambda d: -abs(d[0]),
    )
    print(f"{'delta/req':>10} {'before/req':>10} {'after/req':>10}  function")
    for d, k in deltas[: a.top]:
        print(f"{d / n:>+10,.0f} {fb.get(k, 0) / n:>10,.0f} {fa.get(k, 0) / n:>10,.0f}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
