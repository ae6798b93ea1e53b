"""Run (or resume, or join) the study's sweep over the reference datasets.

Thin wrapper over :func:`finetune_advisor.bench.run_bench`; same as ``finetune-advisor bench run``.

    python benchmarks/run_bench.py --profile cpu --seeds 3                      # all six stand-ins
    python benchmarks/run_bench.py --datasets pets --fractions 0.2 --seeds 1 --n-trials 4
    python benchmarks/run_bench.py --storage postgresql+psycopg2://user@host/db --study s1   # on each machine
"""
from __future__ import annotations

import sys

from finetune_advisor.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "run", *sys.argv[1:]]))
