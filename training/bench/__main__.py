"""Benchmark entry point.

python -m training.bench squad --n 50 --seed 0 --k 4 --out docs/bench-squad.json
python -m training.bench facts --n 10 --out docs/bench-facts.json
"""

from __future__ import annotations

import sys

from training.bench import facts, squad


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"squad": squad.main, "facts": facts.main}
    if not argv or argv[0] not in commands:
        print(f"usage: python -m training.bench {{{','.join(commands)}}} [options]  (--help for each)")
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
