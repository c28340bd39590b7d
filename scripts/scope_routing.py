"""Which chat turns scope routing sends to the user's adapter, per routing rule.

    .venv/bin/python scripts/scope_routing.py --out docs/scope-routing.json

On the bundled personal facts and their benchmark questions (worded unlike the
facts), and on the 50 held-out locality prompts (40 general, 10 general requests
phrased "my ..."): the share of questions routed to the adapter (a question not
routed gets the base model, which does not know the fact) and the number of
locality prompts routed (the only ones whose answers the adapter can change for
a user). Known facts: each question with its own fact alone (a user with one
fact), the first 30, all of them (105 in the bundled set; ``--facts-file`` for
another set, such as the held-out ``personal_facts_heldout.jsonl``). Rules:
``personal`` = any "my"/"do I"/"about me" or a name from a fact (the rule
before); ``words`` = the current rule without the embedding check;
``words+topic`` = the current rule as served.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from training.adapters import AdapterHost
from training.bench.facts import DEFAULT_FACTS, load_facts
from training.model import load_model, prepare_base_model
from training.replay import GENERAL_LOCALITY_PROMPTS, PERSONAL_LOCALITY_PROMPTS
from training.scope import Scope, TopicEmbedder, about_the_user

_BEFORE = re.compile(r"\b(?:my|mine|myself)\b|(?<!\bhow )\b(?:do|did|am|was|were|have|had)\s+i\b")


class PersonalOnly(Scope):
    """The rule before: any sign of the user, whatever the topic."""

    def message(self, message: str) -> bool:
        lowered = message.lower()
        names = {w.lower().removesuffix("'s") for w in re.findall(r"[A-Za-z0-9']+", message)} & self.names
        return bool(names) or about_the_user(lowered) or bool(_BEFORE.search(lowered))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/scope-routing.json"))
    parser.add_argument("--facts-file", type=Path, default=DEFAULT_FACTS, help="facts and questions, JSON lines")
    args = parser.parse_args()
    host = AdapterHost(load_model(prepare_base_model(None, Path(".cache/models"))))
    topics = TopicEmbedder.of_host(host)
    facts = load_facts(args.facts_file)
    sizes = sorted({min(30, len(facts)), len(facts)})
    rules = {
        "personal": lambda fs: PersonalOnly(fs),
        "words": lambda fs: Scope(fs),
        "words+topic": lambda fs: Scope(fs, topics.nearer_to_facts),
    }
    rows = []
    for name, rule in rules.items():
        row = {"rule": name}
        single = [all(rule([f.text]).message(q) for q, _ in f.questions) for f in facts]
        row["questions_routed_one_fact"] = round(sum(single) / len(single), 4)
        for n in sizes:
            scope = rule([f.text for f in facts[:n]])
            routed = [all(scope.message(q) for q, _ in f.questions) for f in facts[:n]]
            row[f"questions_routed_{n}_facts"] = round(sum(routed) / n, 4)
            row[f"general_prompts_routed_{n}_facts"] = sum(scope.message(p) for p in GENERAL_LOCALITY_PROMPTS)
            row[f"my_prompts_routed_{n}_facts"] = [p for p in PERSONAL_LOCALITY_PROMPTS if scope.message(p)]
        missed = [f.questions[0][0] for f, ok in zip(facts, routed, strict=True) if not ok]
        row[f"questions_missed_{len(facts)}_facts"] = missed
        rows.append(row)
    args.out.write_text(json.dumps({"facts_file": str(args.facts_file), "facts": len(facts), "rows": rows}, indent=1))
    n = len(facts)
    print("questions routed to the adapter | locality prompts routed: general (of 40), my... (of 10)")
    head = f"{'rule':<12} {'one fact':>9} {f'{sizes[0]} facts':>9} {f'{n} facts':>10} {'general':>8}"
    print(f"{head} {f'my@{sizes[0]}':>6} {f'my@{n}':>7}")
    for r in rows:
        print(
            f"{r['rule']:<12} {r['questions_routed_one_fact']:>9.3f} {r[f'questions_routed_{sizes[0]}_facts']:>9.3f} "
            f"{r[f'questions_routed_{n}_facts']:>10.3f} {r[f'general_prompts_routed_{n}_facts']:>8} "
            f"{len(r[f'my_prompts_routed_{sizes[0]}_facts']):>6} {len(r[f'my_prompts_routed_{n}_facts']):>7}"
        )


if __name__ == "__main__":
    main()
