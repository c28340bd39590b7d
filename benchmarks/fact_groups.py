"""The ``groups`` method of the facts benchmark: one small adapter per group of facts.

Each group is its own chain of versions, taught exactly as the ``memory`` method
teaches a user's single adapter (warm start, rehearsal of the group's earlier
facts, KL replay, the gate with one retry), so a consolidation never trains more
than ``--group-size`` facts; a fact its group refuses twice opens a new group, as
in the worker (``training.memory.plan.GROUP_RETRY_ATTEMPTS``). A question is answered as the
product serves it (``training.routing.groups.answering_group``): by the group its words
pick, among several groups by which adapter is most sure of its first
``ROUTING_TOKENS`` tokens, and by none when that adapter's confidence is below
the routing floor (``--routing-floor``) or its reply's first sentence names things
no taught fact holds (``--grounding``, ``training.routing.groups.grounded``); the product
then says it does not know, which recalls nothing. A forget rebuilds each affected group from scratch
without the forgotten facts; the other groups are not touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.facts import BenchFact, Learner
from training.adapters import AdapterHost
from training.chat import ChatMessage, generate_batch_scored, with_system_prompt
from training.memory.gate import GateThresholds
from training.memory.plan import GROUP_RETRY_ATTEMPTS, PendingFact, plan_run
from training.memory.quiz import contains_answer
from training.routing.groups import (
    DEFAULT_ROUTING_FLOOR,
    ROUTING_TOKENS,
    answering_group,
    candidate_groups,
    grounded,
)

STATE_FILE = "groups.json"


class GroupLearner:
    """A user's memory as groups of at most ``args.group_size`` facts (``Learner``'s interface)."""

    method = "groups"

    def __init__(self, host: AdapterHost, work: Path, args) -> None:
        self.host, self.work, self.args = host, work, args
        self.size = args.group_size
        self.floor = getattr(args, "routing_floor", DEFAULT_ROUTING_FLOOR)
        self.grounding = getattr(args, "grounding", "on") == "on"
        self.parts: dict[int, Learner] = {}
        self.changed: dict[int, tuple[str, ...]] = {}  # each group's locality prompts it changed
        # (group, its version count, question) -> reply, confidence: a group's
        # answers change only when it does.
        self._answers: dict[tuple[int, int, str], tuple[str, float]] = {}

    def _part(self, group: int) -> Learner:
        if group not in self.parts:
            self.parts[group] = Learner(self.host, "memory", self.work / "groups", self.args, name=f"g{group}")
        return self.parts[group]

    @property
    def known(self) -> dict:
        return {i: f for part in self.parts.values() for i, f in part.known.items()}

    @property
    def refused(self) -> int:
        return sum(part.refused for part in self.parts.values())

    def _texts(self) -> dict[int, list[str]]:
        return {g: [f.text for f in part.known.values()] for g, part in self.parts.items() if part.known}

    def teach(self, fact: BenchFact, thresholds: GateThresholds) -> tuple[float, float, tuple[str, ...]]:
        """As the worker plans it (``training.memory.plan.plan_run``): the fact's group tries
        twice (the gate's retry); a fact refused both times opens a new group and tries there."""
        held = {g: list(part.known) for g, part in self.parts.items()}
        plan = plan_run(held, [PendingFact(fact.index)], [], self.size)
        assert plan is not None
        seconds, locality, changed = self._part(plan.group).teach(fact, thresholds)
        if locality != locality and self.parts[plan.group].known:
            # Refused twice (``Learner.teach`` retries once), as the worker counts attempts.
            plan = plan_run(held, [PendingFact(fact.index, attempts=GROUP_RETRY_ATTEMPTS)], [], self.size)
            assert plan is not None
            more, locality, changed = self._part(plan.group).teach(fact, thresholds)
            seconds += more
        if locality == locality:  # accepted: the group's live adapter changed
            self.changed[plan.group] = changed
        return seconds, locality, self.locality_changed

    @property
    def locality_changed(self) -> tuple[str, ...]:
        """Every general prompt some live group changed: served locality counts a
        routed prompt as changed whichever group answers it (an upper bound)."""
        out: dict[str, None] = {}
        for group, prompts in sorted(self.changed.items()):
            if self.parts[group].live is not None:
                out.update(dict.fromkeys(prompts))
        return tuple(out)

    def recall_of(self, facts: list[BenchFact]) -> dict[int, float]:
        """Each fact's share of benchmark questions answered as served: the routing floor
        and the grounding check on."""
        return self.routed_recall(facts, self.floor, self.grounding)

    def routed_recall(self, facts: list[BenchFact], floor: float | None, grounding: bool = False) -> dict[int, float]:
        """Each fact's share of benchmark questions answered through group routing;
        a question whose answering adapter is less sure than ``floor`` (None: no
        floor), or whose reply is not grounded in the taught facts (``grounding``),
        recalls nothing. Every candidate group's reply is decoded once per version."""
        texts = self._texts()
        if not texts:
            return {f.index: 0.0 for f in facts}
        questions = [(q, answers) for f in facts for q, answers in f.questions]
        candidates = [candidate_groups(q, texts) for q, _ in questions]
        self._answer(
            {g for c in candidates for g in c}, [(q, c) for (q, _), c in zip(questions, candidates, strict=True)]
        )
        taught = [t for mine in texts.values() for t in mine] if grounding else None
        graded = iter(contains_answer(self._served(q, texts, floor, taught), answers) for q, answers in questions)
        out = {}
        for fact in facts:
            mine = [next(graded) for _ in fact.questions]
            out[fact.index] = sum(mine) / len(mine)
        return out

    def _served(self, question: str, texts: dict[int, list[str]], floor: float | None, taught: list[str] | None) -> str:
        """The reply of the group ``answering_group`` picks; "" where none answers
        (under the floor, or not grounded in ``taught``, the facts' texts: None, no check)."""

        def confidence(groups) -> dict[int, float]:
            return {g: self._answers[(g, self.parts[g].versions, question)][1] for g in groups}

        group = answering_group(question, texts, confidence, floor)
        reply = "" if group is None else self._answers[(group, self.parts[group].versions, question)][0]
        if taught is not None and reply and not grounded(reply, question, taught):
            return ""
        return reply

    def _answer(self, groups: set[int], asked: list[tuple[str, list[int]]]) -> None:
        """Each group's greedy reply and confidence on the questions routed to it, cached per live adapter."""
        for group in sorted(groups):
            key = (group, self.parts[group].versions)
            todo = list(dict.fromkeys(q for q, c in asked if group in c and (*key, q) not in self._answers))
            if not todo:
                continue
            name = f"bench-route-g{group}"
            self.host.load(name, self.parts[group].live)
            try:
                with self.host.using(name) as model:
                    scored = generate_batch_scored(
                        model,
                        self.host.tokenizer,
                        [with_system_prompt([ChatMessage("user", q)]) for q in todo],
                        40,
                        confidence_tokens=ROUTING_TOKENS,
                    )
            finally:
                self.host.unload(name)
            self._answers.update({(*key, q): r for q, r in zip(todo, scored, strict=True)})

    def forget(self, facts: list[BenchFact], thresholds: GateThresholds) -> dict:
        """Take the forgotten facts out of each group that holds one, as ``Learner.forget``
        does for one adapter (a rebuild); a group left with no fact is dropped."""
        by_group: dict[int, list[BenchFact]] = {}
        for fact in facts:
            group = next(g for g, part in self.parts.items() if fact.index in part.known)
            by_group.setdefault(group, []).append(fact)
        results = {}
        for group, mine in sorted(by_group.items()):
            part = self.parts[group]
            if len(mine) == len(part.known):  # nothing left: the group is dropped
                for fact in mine:
                    part.known.pop(fact.index)
                part.live = None
                self.changed.pop(group, None)
                results[group] = {"accepted": True, "dropped": True, "seconds": 0.0}
                continue
            results[group] = part.forget(mine, thresholds)
        return {
            "accepted": all(r["accepted"] for r in results.values()),
            "rebuilt": any(r.get("rebuilt") for r in results.values()),
            "groups": {str(g): {**r, "forgotten": [f.text for f in by_group[g]]} for g, r in results.items()},
            "seconds": round(sum(r["seconds"] for r in results.values()), 1),
        }

    def save_state(self, folder: Path, n: int) -> None:
        for group, part in self.parts.items():
            part.save_state(folder / f"g{group}", n)
        tmp = folder / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps({"n": n, "size": self.size, "changed": {str(g): c for g, c in self.changed.items()}}))
        tmp.replace(folder / STATE_FILE)

    def restore(self, folder: Path) -> int:
        path = folder / STATE_FILE
        if not path.is_file():
            return 0
        state = json.loads(path.read_text())
        if state["size"] != self.size:
            raise ValueError(f"{path} was written with --group-size {state['size']}: resume with it")
        for sub in sorted(folder.glob("g*")):
            if sub.is_dir() and sub.name[1:].isdigit():
                self._part(int(sub.name[1:])).restore(sub)
        self.changed = {int(g): tuple(c) for g, c in state["changed"].items()}
        return state["n"]
