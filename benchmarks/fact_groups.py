"""The ``groups`` method of the facts benchmark: one small adapter per group of facts.

Each group is its own chain of versions, taught exactly as the ``memory`` method
teaches a user's single adapter (warm start, rehearsal of the group's earlier
facts, KL replay, the gate with one retry), so a consolidation never trains more
than ``--group-size`` facts; a fact its group refuses twice opens a new group, as
in the worker (``training.memory.plan.GROUP_RETRY_ATTEMPTS``). A question is answered as the
product serves it (``training.routing.router``): by the group of the nearest taught
fact when the router sends it to an adapter; a question it sends to the base model
or answers "I don't know" recalls nothing. A forget rebuilds each affected group
from scratch without the forgotten facts; the other groups are not touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.facts import BenchFact, Learner
from training.adapters import AdapterHost
from training.chat import ChatMessage, generate_batch, with_system_prompt
from training.memory.gate import GateThresholds
from training.memory.plan import GROUP_RETRY_ATTEMPTS, PendingFact, plan_run
from training.memory.quiz import contains_answer
from training.routing.router import Router

STATE_FILE = "groups.json"


class GroupLearner:
    """A user's memory as groups of at most ``args.group_size`` facts (``Learner``'s interface)."""

    method = "groups"

    def __init__(self, host: AdapterHost, work: Path, args, router: Router | None = None) -> None:
        self.host, self.work, self.args = host, work, args
        self.size = args.group_size
        self.router = router
        self.parts: dict[int, Learner] = {}
        self.changed: dict[int, tuple[str, ...]] = {}  # each group's locality prompts it changed
        # (group, its version count, question) -> reply: a group's answers change only when it does.
        self._answers: dict[tuple[int, int, str], str] = {}

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

    def held(self) -> tuple[list[str], list[int]]:
        """The taught facts' texts and their groups, as the router sees a user's version."""
        pairs = [(f.text, g) for g, part in sorted(self.parts.items()) for f in part.known.values()]
        return [t for t, _ in pairs], [g for _, g in pairs]

    def recall_of(self, facts: list[BenchFact]) -> dict[int, float]:
        """Each fact's share of benchmark questions answered as served: routed by the
        router to the nearest fact's group, or not answered by an adapter at all."""
        texts, groups = self.held()
        if self.router is None:
            raise ValueError("the groups method grades as served: it needs the product's router")
        routes = {q: self.router.route(q, texts, groups) for f in facts for q, _ in f.questions} if texts else {}
        return self._graded(facts, {q: r.group for q, r in routes.items() if r.outcome == "adapter"})

    def adapter_recall(self, facts: list[BenchFact]) -> dict[int, float]:
        """Each fact's share of benchmark questions its own group's adapter answers (no
        routing: what the weights hold), beside recall as served."""
        group_of = {i: g for g, part in self.parts.items() for i in part.known}
        return self._graded(facts, {q: group_of[f.index] for f in facts if f.index in group_of for q, _ in f.questions})

    def _graded(self, facts: list[BenchFact], answering: dict[str, int]) -> dict[int, float]:
        """Grade each question on the reply of the group ``answering`` names ("" without one)."""
        self._answer(answering)
        out = {}
        for fact in facts:
            mine = [
                contains_answer(self._answers[(answering[q], self.parts[answering[q]].versions, q)], answers)
                if q in answering
                else False
                for q, answers in fact.questions
            ]
            out[fact.index] = sum(mine) / len(mine)
        return out

    def _answer(self, answering: dict[str, int]) -> None:
        """Each group's greedy reply to the questions it answers, cached per live adapter."""
        for group in sorted(set(answering.values())):
            key = (group, self.parts[group].versions)
            todo = [q for q, g in answering.items() if g == group and (*key, q) not in self._answers]
            if not todo:
                continue
            name = f"bench-route-g{group}"
            self.host.load(name, self.parts[group].live)
            try:
                with self.host.using(name) as model:
                    prompts = [with_system_prompt([ChatMessage("user", q)]) for q in todo]
                    replies = generate_batch(model, self.host.tokenizer, prompts, 40)
            finally:
                self.host.unload(name)
            self._answers.update({(*key, q): r for q, r in zip(todo, replies, strict=True)})

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
