"""Print the package's largest modules (lines), and exit 1 if any is over the limit.

    python3 benchmarks/module_sizes.py            # top 15, limit 450 lines
    python3 benchmarks/module_sizes.py --top 40 --limit 400
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "finetune_advisor"


def module_sizes(root: Path = PACKAGE) -> list[tuple[int, str]]:
    sizes = [(sum(1 for _ in p.open(encoding="utf-8")), str(p.relative_to(root.parent)))
             for p in root.rglob("*.py")]
    return sorted(sizes, reverse=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--limit", type=int, default=450)
    args = ap.parse_args(argv)
    sizes = module_sizes()
    for n, name in sizes[:args.top]:
        print(f"{n:6d}  {name}{'   <-- over ' + str(args.limit) if n > args.limit else ''}")
    over = [name for n, name in sizes if n > args.limit]
    print(f"{len(sizes)} modules, {sum(n for n, _ in sizes)} lines; largest {sizes[0][0]}; "
          f"{len(over)} over {args.limit}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
