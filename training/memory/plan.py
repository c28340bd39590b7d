"""What one consolidation does, decided from facts alone (pure: no model, no store).

The worker (``app.memory.consolidation``) and the facts benchmark
(``benchmarks.fact_groups``) both ask ``plan_run`` what to train; each then
reads and writes its own store (the database, or the benchmark's state).

- **Which group**: the lowest group a new or leaving fact touches
  (``next_group``); the new facts placed in other groups wait for
  their group's run, so every run trains one bounded group and one gate judges it.
- **How**: a group that loses a fact (forget, correction) is rebuilt from scratch
  on the facts it keeps, so nothing of the removed fact was ever trained into the
  new version; otherwise a group that exists is warm-started from its adapter
  and a new group starts fresh.
- **Retry**: a fact the gate refused is retried warm-started like any run (the
  facts the refused version lost rehearsed first: ``training.memory.gate.recall_after_refusal``);
  after ``GROUP_RETRY_ATTEMPTS`` refusals it opens a new group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

# Facts per group (``SEALCHAT_FACT_GROUP_SIZE``). 5, not 10: on the
# held-out sets taught one at a time, the first 10 facts kept 21 of the 23 they
# had learnt just after learning in groups of 5, against 16 of 24 in groups of 10
# (the same three runs, docs/BENCHMARKS.md "Groups of 5").
DEFAULT_GROUP_SIZE = 5

# A fact the gate refused this many times in its group is retried in a new one
# (``next_group``'s ``fresh``): the facts there cannot push it out again.
GROUP_RETRY_ATTEMPTS = 2

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


def place_facts(
    groups: Mapping[int, Sequence[int]],
    new: Sequence[int],
    size: int,
    home: Mapping[int, int] | None = None,
) -> dict[int, list[int]]:
    """The group of each new fact, as ``{group: [new fact ids]}``.

    ``groups``: the facts each existing group holds now (after removals).
    ``home``: a new fact that replaces an earlier one (a correction) joins the
    replaced fact's group, so one rebuild both removes the old value and teaches
    the new one, and no other group still holds the old value to answer with.
    Other facts fill the newest group up to ``size``, then open new groups.
    """
    if size < 1:
        raise ValueError(f"a fact group holds at least one fact (size={size})")
    filled = {g: len(ids) for g, ids in groups.items()}
    out: dict[int, list[int]] = {}
    rest = []
    for fact in new:
        group = (home or {}).get(fact)
        if group is None:
            rest.append(fact)
            continue
        out.setdefault(group, []).append(fact)
        filled[group] = filled.get(group, 0) + 1
    current = max(filled, default=-1)
    for fact in rest:
        if current < 0 or filled[current] >= size:
            current += 1
            filled[current] = 0
        out.setdefault(current, []).append(fact)
        filled[current] += 1
    return out


def next_group(
    groups: Mapping[int, Sequence[int]],
    new: Sequence[int],
    removed: Mapping[int, int],
    size: int,
    home: Mapping[int, int] | None = None,
    fresh: Sequence[int] = (),
) -> tuple[int, list[int]] | None:
    """The one group a consolidation trains next, and the new facts it learns.

    ``groups``: the facts each group holds that stay (learnt, not being removed);
    ``removed``: each fact leaving the weights, mapped to its group; ``home`` as in
    ``place_facts``; ``fresh``: new facts the gate refused again and again in their
    group (a group whose earlier facts every new version pushed out), which open
    a new group instead. The lowest touched group goes first; facts placed in
    other groups wait for the next run, so every run trains one bounded group and
    one gate judges it. ``None`` when nothing is to be learnt or removed.
    """
    home = dict(home or {})
    if fresh:
        opened = max([*groups, *removed.values(), *home.values()], default=-1) + 1
        home.update({fact: opened for fact in fresh if fact not in home})
    placed = place_facts(groups, new, size, home)
    touched = sorted({*placed, *removed.values()})
    if not touched:
        return None
    return touched[0], placed.get(touched[0], [])
