"""How often the words of a question point at its fact's group, with no model at all.

    .venv/bin/python scripts/word_routing.py [--group-size 10] [--out docs/word-routing.json]

For each facts file (the bundled set and the two held-out sets), the facts are put
in groups of ``--group-size`` in order, as a user teaching them one at a time
would, and every benchmark question is routed by ``training.groups.candidate_groups``.
A question is counted as: routed to its group alone (``right``), to another group
alone (``wrong``), to a tie that holds its group (``tie``: the adapters' confidence
decides), or to no group by its words (``none``: every group is a candidate). The
first two are what words alone settle; ``scripts/group_routing.py`` measures the
whole rule with trained adapters. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.groups import candidate_groups

SETS = {
    "bundled": Path("training/data/personal_facts.jsonl"),
    "heldout": Path("training/data/personal_facts_heldout.jsonl"),
    "heldout2": Path("training/data/personal_facts_heldout2.jsonl"),
}


def measure(path: Path, size: int) -> dict:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[int, list[str]] = {}
    for index, row in enumerate(rows):
        groups.setdefault(index // size, []).append(row["fact"])
    counts = {"right": 0, "wrong": 0, "tie": 0, "tie_without": 0, "none": 0}
    misses = []
    for index, row in enumerate(rows):
        for question in row["questions"]:
            found = candidate_groups(question["q"], groups)
            own = index // size
            if len(found) == len(groups) and len(groups) > 1:
                kind = "none"
            elif found == [own]:
                kind = "right"
            elif len(found) == 1:
                kind = "wrong"
            else:
                kind = "tie" if own in found else "tie_without"
            counts[kind] += 1
            if kind in ("wrong", "tie_without", "none"):
                misses.append({"question": question["q"], "fact": row["fact"], "kind": kind})
    total = sum(counts.values())
    return {
        "facts": len(rows),
        "questions": total,
        "groups": len(groups),
        **{k: round(v / total, 3) for k, v in counts.items()},
        "misses": misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/word-routing.json"))
    args = parser.parse_args()
    results = {name: measure(path, args.group_size) for name, path in SETS.items()}
    columns = ("facts", "groups", "right", "wrong", "tie", "tie_without", "none")
    print(f"{'set':10}" + "".join(f"{c:>13}" for c in columns))
    for name, row in results.items():
        print(f"{name:10}" + "".join(f"{row[c]:>13}" for c in columns))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"group_size": args.group_size, "sets": results}, indent=1))


if __name__ == "__main__":
    main()
