#!/usr/bin/env python3
"""Small helpers for Benchmarks/run.sh.

  measure.py run OUT CMD...   run CMD under /usr/bin/time -v (stdout and stderr go to OUT);
                              print "SECONDS MAX_RSS_KIB" (wall clock from this process,
                              peak resident set from time's "Maximum resident set size");
                              exit with CMD's status
  measure.py median X...      the median of the numbers
  measure.py ratio A B        A / B, as "12.3x" (or "n/a")
  measure.py pct A B          A / B, as a percentage
  measure.py le A B           exit 0 if A <= B
"""
import re
import statistics
import subprocess
import sys
import tempfile
import time


def run(out, command):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report, open(out, "w") as sink:
        start = time.perf_counter()
        status = subprocess.call(
            ["/usr/bin/time", "-v", "-o", report.name] + command, stdout=sink, stderr=subprocess.STDOUT
        )
        elapsed = time.perf_counter() - start
        text = report.read()
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    print(f"{elapsed:.4f} {match.group(1) if match else 0}")
    return status


def number(text):
    try:
        return float(text)
    except ValueError:
        return None


if __name__ == "__main__":
    what, args = sys.argv[1], sys.argv[2:]
    if what == "run":
        sys.exit(run(args[0], args[1:]))
    elif what == "median":
        print(f"{statistics.median(float(a) for a in args):.4f}")
    elif what in ("ratio", "pct"):
        a, b = number(args[0]), number(args[1])
        if a is None or b is None or b == 0:
            print("n/a")
        elif what == "ratio":
            r = a / b
            print(f"{r:.0f}x" if r >= 100 else f"{r:.1f}x" if r >= 10 else f"{r:.2f}x")
        else:
            print(f"{100 * a / b:.1f}%")
    elif what == "le":
        a, b = number(args[0]), number(args[1])
        sys.exit(0 if a is not None and b is not None and a <= b else 1)
    else:
        sys.exit(__doc__)
