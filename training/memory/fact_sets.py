"""Personal facts with questions and answers: the sets that evaluate memory.

A line of a ``.jsonl`` set: ``{"fact": "...", "questions": [{"q": "...", "answers": ["..."]}]}``.
``personal_facts.jsonl``, the two ``personal_facts_heldout*.jsonl`` and
``personal_facts_reworded.jsonl`` (40 facts whose questions share few words with
them, written to tune routing on far wordings) are dev sets (rules and defaults
were tuned while reading them); a policy round scores its
self-edits on the first few of the first. ``personal_facts_test.jsonl`` is the
test set: 100 facts from people, places and domains none of the dev sets has.
The first 64 were written before the routing it judges; the last 36 were added
so that a run can teach 100 facts, before any code they could judge was
changed. No code is changed because of one of its failures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
DEFAULT_FACTS = DATA / "personal_facts.jsonl"
TEST_FACTS = DATA / "personal_facts_test.jsonl"
# Dev facts whose questions are worded far from the fact, often asking for advice the
# fact decides ("Should I order the shrimp pasta?"). Free to look at and tune on, but
# never used to fit the router: it measures how the product's router meets questions
# unlike the ones it was fitted on.
OBLIQUE_FACTS = DATA / "personal_facts_oblique.jsonl"
DEV_FACT_SETS = (
    DEFAULT_FACTS,
    DATA / "personal_facts_heldout.jsonl",
    DATA / "personal_facts_heldout2.jsonl",
    DATA / "personal_facts_reworded.jsonl",
)


@dataclass(frozen=True)
class BenchFact:
    index: int
    text: str
    questions: tuple[tuple[str, tuple[str, ...]], ...]


def load_facts(path: Path) -> list[BenchFact]:
    facts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        questions = tuple((q["q"], tuple(q["answers"])) for q in row.get("questions", []))
        if not row.get("fact") or not questions or not all(a for _, a in questions):
            raise ValueError(f"{path}:{number}: needs a fact and questions with answers")
        facts.append(BenchFact(len(facts), row["fact"], questions))
    return facts
