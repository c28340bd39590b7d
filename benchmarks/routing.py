"""Routing before the first token: who answers each question, and how fast.

    python -m benchmarks.routing --out docs/bench-routing.json

For each fact set, the first ``--taught`` facts are taught (groups of 5 in order,
as the product places them one at a time), and every question is routed by
``training.routing.router.Router`` with nothing decoded:

- **taught**: questions about the taught facts should go to the adapters, to the
  group holding their fact;
- **untaught**: questions about the set's other facts (the user never taught
  them) should not reach an adapter ("I don't know" or the base model);
- **first 10**: of the taught questions, those about the first 10 facts taught,
  which compete with every later fact (the forgetting curve's "first 10");
- **general**: the 50 locality prompts (never used to fit or tune anything)
  should go to the base model; the share that does bounds served locality from
  below whatever the adapters changed.

None of these asks for everything the user taught; the share of them all routed
to ``overview`` (which answers with the list of taught facts) is reported too.

Dev sets are scored with a router fitted without them (leave one set out); the
oblique dev set (questions worded far from their facts, never fitted on) and the
test set with the product's router, fitted on the other dev sets. (The word rules
it replaced were scored beside it once: docs/routing-rules-vs-learned.json,
docs/decisions/014.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from training.embeddings import SentenceEmbedder
from training.memory.fact_sets import DATA, OBLIQUE_FACTS, TEST_FACTS, BenchFact, load_facts
from training.replay import LOCALITY_PROMPTS
from training.routing.router import Router, dev_router, product_router

DEV_SETS = {
    "dev: bundled": DATA / "personal_facts.jsonl",
    "dev: heldout": DATA / "personal_facts_heldout.jsonl",
    "dev: heldout2": DATA / "personal_facts_heldout2.jsonl",
    "dev: reworded": DATA / "personal_facts_reworded.jsonl",
}
GROUP_SIZE = 5
FIRST = 10


def evaluate(router: Router, facts: list[BenchFact], taught: int) -> dict:
    known, rest = facts[:taught], facts[taught:]
    texts = [f.text for f in known]
    groups = [i // GROUP_SIZE for i in range(len(known))]
    seconds: list[float] = []

    def route(question: str):
        started = time.perf_counter()
        out = router.route(question, texts, groups)
        seconds.append(time.perf_counter() - started)
        return out

    router.route("warm-up", texts, groups)  # the user's facts embedded once, as in a process
    taught_routes = [(i, route(q)) for i, f in enumerate(known) for q, _ in f.questions]
    untaught_routes = [route(q) for f in rest for q, _ in f.questions]
    general_routes = [route(p) for p in LOCALITY_PROMPTS]
    to_adapter = [r for _, r in taught_routes if r.outcome == "adapter"]
    right = [i for i, r in taught_routes if r.outcome == "adapter" and r.group == i // GROUP_SIZE]
    first = [i for i, _ in taught_routes if i < FIRST]
    return {
        "taught": len(known),
        "taught_to_adapter": len(to_adapter) / len(taught_routes),
        "taught_right_group": len(right) / len(taught_routes),
        # The facts taught first, whose questions compete with every later fact.
        "first10_right_group": sum(1 for i in right if i < FIRST) / len(first) if first else None,
        "right_group_of_routed": len(right) / len(to_adapter) if to_adapter else None,
        "untaught": len(untaught_routes),
        "untaught_to_adapter": (
            sum(r.outcome == "adapter" for r in untaught_routes) / len(untaught_routes) if untaught_routes else None
        ),
        "untaught_unknown": (
            sum(r.outcome == "unknown" for r in untaught_routes) / len(untaught_routes) if untaught_routes else None
        ),
        "general_to_base": sum(r.outcome == "base" for r in general_routes) / len(general_routes),
        "general_to_adapter": sum(r.outcome == "adapter" for r in general_routes) / len(general_routes),
        "general_routed_to_adapter": [
            p for p, r in zip(LOCALITY_PROMPTS, general_routes, strict=True) if r.outcome == "adapter"
        ],
        "to_overview": sum(
            r.outcome == "overview" for r in [*(r for _, r in taught_routes), *untaught_routes, *general_routes]
        )
        / (len(taught_routes) + len(untaught_routes) + len(general_routes)),
        "ms_median": round(1000 * statistics.median(seconds), 1),
        "ms_p95": round(1000 * sorted(seconds)[int(0.95 * (len(seconds) - 1))], 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.routing", description=__doc__.split("\n\n")[0])
    parser.add_argument("--taught", type=int, default=30, help="facts taught of each set (the rest are untaught)")
    parser.add_argument("--out", type=Path, default=Path("docs/bench-routing.json"))
    parser.add_argument("--dev-only", action="store_true", help="leave the test set out (for tuning)")
    args = parser.parse_args(argv)
    embedder = SentenceEmbedder()
    results: dict = {"taught": args.taught, "group_size": GROUP_SIZE, "sets": {}}
    for name, path in DEV_SETS.items():
        others = [p for n, p in DEV_SETS.items() if n != name]
        router = dev_router(embedder, others)
        facts = load_facts(path)
        results["sets"][name] = evaluate(router, facts, min(args.taught, len(facts) - 5))
    product = product_router(embedder)
    oblique = load_facts(OBLIQUE_FACTS)
    results["sets"]["dev: oblique"] = evaluate(product, oblique, min(args.taught, len(oblique) - 5))
    if not args.dev_only:
        test = load_facts(TEST_FACTS)
        results["sets"]["test"] = evaluate(product, test, args.taught)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    print(f"{results['taught']} facts taught per set, groups of {results['group_size']}")
    print(
        f"{'set':<15} {'taught→adapter':>14} {'right group':>11} {'untaught→adapter':>16} "
        f"{'first 10 right':>14} {'general→adapter':>15} {'→overview':>9} {'ms p50/p95':>11}"
    )
    for name, r in results["sets"].items():
        untaught = "—" if r["untaught_to_adapter"] is None else f"{r['untaught_to_adapter']:.2f}"
        first = "—" if r.get("first10_right_group") is None else f"{r['first10_right_group']:.2f}"
        print(
            f"{name:<15} {r['taught_to_adapter']:>14.2f} {r['taught_right_group']:>11.2f} {untaught:>16} "
            f"{first:>14} {r['general_to_adapter']:>15.2f} {r['to_overview']:>9.3f} "
            f"{r['ms_median']:>5}/{r['ms_p95']:<5}"
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
