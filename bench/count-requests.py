#!/usr/bin/env python3
"""count-requests.py -- what one run asked of bench/serve.py, from its request log:
connections opened, requests made, the requests before the first package (each a
round trip on the critical path when made one after another) and the span from the
first request to the last.

Usage: count-requests.py LOG [LABEL]
"""
import sys


def main():
    path = sys.argv[1]
    label = sys.argv[2] if len(sys.argv) > 2 else path
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5:
                rows.append((float(parts[0]), parts[1], parts[2], parts[3], parts[4]))
    if not rows:
        print("%s: no requests" % label)
        return
    rows.sort()
    first_package = next((i for i, r in enumerate(rows) if r[3].endswith(".apk")), len(rows))
    before = ", ".join("%s %s" % (r[2], r[3].rsplit("/", 1)[-1]) for r in rows[:first_package])
    print("%s: %d connections, %d requests; %d before the first package (%s); "
          "first to last request %.3f s" % (
              label, len({r[1] for r in rows}), len(rows), first_package, before,
              rows[-1][0] - rows[0][0]))


if __name__ == "__main__":
    main()
