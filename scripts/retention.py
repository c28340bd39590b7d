"""How much of what the first facts learnt is still recalled later: facts benchmark step files compared.

    .venv/bin/python scripts/retention.py docs/bench-facts-heldout-unlearn.steps.jsonl \\
        docs/bench-facts-heldout-g5.steps.jsonl --at 10 --out docs/retention-group-size.json

For each steps file (``python -m training.bench facts``; one method, the first
in the file unless ``--method``), at step ``--at``: the first ``--first`` facts'
recall (``recall_first10``), how many of them were recalled just after each was
taught (``recall_new`` at its own step), how many of those are still recalled
(``kept``, fact by fact), the issue's ratio (recall now over recall just after,
which counts a fact recalled now but not just after), the mean of
``recall_first10`` over the steps from ``--first`` / 2 + 1 to ``--at``, the
gate's refusals so far and the adapter locality. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def retention(path: Path, at: int, first: int, method: str | None = None) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    method = method or rows[0]["method"]
    steps = {row["n"]: row for row in rows if row["method"] == method}
    if at not in steps:
        raise SystemExit(f"{path}: no step {at} for method {method} (steps {min(steps)}-{max(steps)})")
    end = steps[at]
    learnt = [i for i in range(first) if steps[i + 1]["recall_new"] >= 1.0]
    kept = [i for i in learnt if end["recall_by_fact"].get(str(i), 0.0) >= 1.0]
    just_after = sum(steps[i + 1]["recall_new"] for i in range(first)) / first
    window = [steps[n]["recall_first10"] for n in range(first // 2 + 1, at + 1) if n in steps]
    return {
        "file": str(path),
        "method": method,
        "at": at,
        "recall_first": end["recall_first10"],
        "recall_just_after": round(just_after, 4),
        "ratio": round(end["recall_first10"] / just_after, 4) if just_after else None,
        "learnt": len(learnt),
        "kept": len(kept),
        "lost": [steps[i + 1]["fact"] for i in learnt if i not in kept],
        "mean_recall_first_window": round(sum(window) / len(window), 4) if window else None,
        "window": [first // 2 + 1, at],
        "refused_so_far": end.get("refused_so_far"),
        "locality": end["locality"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", type=Path, nargs="+", help="steps files (*.steps.jsonl)")
    parser.add_argument("--at", type=int, default=10, help="the step read")
    parser.add_argument("--first", type=int, default=10, help="how many first facts (the benchmark reports 10)")
    parser.add_argument("--method", default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = [retention(path, args.at, args.first, args.method) for path in args.steps]
    print(f"{'run':<48} {'first':>6} {'after':>6} {'ratio':>6} {'kept':>7} {'mean':>6} {'refused':>7}")
    for row in rows:
        print(
            f"{Path(row['file']).name.removesuffix('.steps.jsonl'):<48} {row['recall_first']:>6.2f} "
            f"{row['recall_just_after']:>6.2f} {row['ratio'] or 0:>6.2f} {row['kept']:>3}/{row['learnt']:<3} "
            f"{row['mean_recall_first_window'] or 0:>6.2f} {row['refused_so_far'] or 0:>7}"
        )
    kept, learnt = sum(r["kept"] for r in rows), sum(r["learnt"] for r in rows)
    print(f"all runs: kept {kept} of the {learnt} learnt ({kept / learnt if learnt else 0:.2f})")
    if args.out:
        args.out.write_text(json.dumps({"at": args.at, "first": args.first, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
