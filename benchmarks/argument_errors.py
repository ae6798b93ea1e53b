"""How fast the CLI answers a bad argument, measured from the outside (issue 28: under 3 s on an
idle machine; they used to come after 9-20 s of torch start-up). Each command is run ``--repeats``
times in a fresh process; the median wall time is printed beside the goal.

    python benchmarks/argument_errors.py
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

GOAL_S = 3.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    empty = tempfile.mkdtemp()
    cases = [["recommend", empty], ["bench", "run", "--seeds", "0"], ["tune", empty, "--budget", "0x"],
             ["recommend", empty, "--budget", "fast"]]
    worst = 0.0
    for case in cases:
        times, last = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            last = subprocess.run([sys.executable, "-m", "finetune_advisor.cli", *case], capture_output=True, text=True)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        worst = max(worst, median)
        line = (last.stderr.strip().splitlines() or ["(no message)"])[-1][:90]
        print(f"{median:5.2f} s  rc {last.returncode}  finetune-advisor {' '.join(case):<40} {line}")
    print(f"slowest median {worst:.2f} s; goal under {GOAL_S:g} s: {'met' if worst < GOAL_S else 'missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
