"""What one consolidation does, decided from facts alone (pure: no model, no store).

The worker (``app.memory.consolidation``) and the facts benchmark
(``benchmarks.fact_groups``) both ask ``plan_run`` what to train; each then
reads and writes its own store (the database, or the benchmark's state).

- **Which group**: the lowest group a new or leaving fact touches
  (``training.groups.next_group``); the new facts placed in other groups wait for
  their group's run, so every run trains one bounded group and one gate judges it.
- **How**: a group that loses a fact (forget, correction) is rebuilt from scratch
  on the facts it keeps, so nothing of the removed fact was ever trained into the
  new version; otherwise a group that exists is warm-started from its adapter
  and a new group starts fresh.
- **Retry**: a fact the gate refused is retried warm-started like any run (the
  facts the refused version lost rehearsed first: ``training.gate.recall_after_refusal``);
  after ``GROUP_RETRY_ATTEMPTS`` refusals it opens a new group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from training.groups import GROUP_RETRY_ATTEMPTS, next_group

Mode = Literal["fresh", "warm start", "rebuild"]


@dataclass(frozen=True)
class PendingFact:
    """A fact waiting to be learnt: ``attempts`` counts the gate's refusals and the
    failures so far; ``replaces``: the learnt fact this one corrects, if any."""

    id: int
    attempts: int = 0
    replaces: int | None = None


@dataclass(frozen=True)
class RunPlan:
    group: int
    new: tuple[int, ...]  # the pending facts this run learns
    waiting: tuple[int, ...]  # pending facts placed in other groups: the next runs'
    kept: tuple[int, ...]  # the group's learnt facts that stay (rehearsed, or the rebuild's data)
    removed: tuple[int, ...]  # the group's facts leaving the weights
    mode: Mode
    retry: bool  # a new fact was refused (or failed) before

    @property
    def warm(self) -> bool:
        return self.mode == "warm start"


def plan_run(
    groups: Mapping[int, Sequence[int]],
    pending: Sequence[PendingFact],
    leaving: Sequence[int],
    size: int,
    warm_start: bool = True,
) -> RunPlan | None:
    """The next run for one user, or None when nothing is to be learnt or removed.

    ``groups``: the facts each live group holds (learnt ones and those leaving);
    ``leaving``: facts that must leave the weights (forgotten, or replaced by a
    correction); ``size``: facts per group (0: one group for all);
    ``warm_start`` False: a group is never warm-started (an ablation).
    """
    group_of = {fact: g for g, facts in groups.items() for fact in facts}
    leaving_set = set(leaving) & set(group_of)
    staying = {g: [f for f in facts if f not in leaving_set] for g, facts in groups.items()}
    pending_ids = {p.id for p in pending}
    chosen = next_group(
        staying,
        [p.id for p in pending],
        {f: group_of[f] for f in leaving_set},
        size or len(group_of) + len(pending) + 1,
        # A correction joins the group of the fact it replaces: one run removes the
        # old value and teaches the new one, and no other group still holds it.
        home={p.id: group_of[p.replaces] for p in pending if p.replaces in leaving_set},
        fresh=[p.id for p in pending if p.attempts >= GROUP_RETRY_ATTEMPTS],
    )
    if chosen is None:
        return None
    group, placed = chosen
    removed = tuple(sorted(f for f in leaving_set if group_of[f] == group))
    exists = group in groups
    mode: Mode = "rebuild" if removed else "warm start" if exists and warm_start else "fresh"
    return RunPlan(
        group=group,
        new=tuple(placed),
        waiting=tuple(sorted(pending_ids - set(placed))),
        kept=tuple(staying.get(group, ())),
        removed=removed,
        mode=mode,
        retry=any(p.attempts > 0 for p in pending if p.id in placed),
    )
