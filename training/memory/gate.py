"""The gate before promotion: a new adapter version must not forget.

A version is refused when its recall of earlier facts falls more than a
threshold below its predecessor's on the same facts (recall here: the share of
those facts recalled, a fact counting as recalled when most of its quiz probes
are, so one flaky probe is not forgetting but a lost fact is), when its locality (share of
unrelated prompts answered as the base model answers them) is below a minimum,
or when it still recalls a fact that was meant to leave the weights (better than
the base model, which never learnt it, does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RECALLED = 0.5  # a fact is recalled when at least half of its quiz probes are


@dataclass(frozen=True)
class GateThresholds:
    max_recall_drop: float = 0.2
    min_locality: float = 0.25
    max_removed_recall: float = 0.0
    # A drop in recall refuses a version only when it loses at least this many
    # earlier facts (or every one it had). At 2-3 earlier facts a single lost fact
    # is a 33-50 % drop, far over any share threshold: one fragile fact ("I can't
    # eat gluten", pushed out by every new fact and by every retry) then refused
    # every later version, and the user could teach nothing more (docs/BENCHMARKS.md).
    min_lost_facts: int = 2


@dataclass(frozen=True)
class GateDecision:
    accepted: bool
    reasons: tuple[str, ...]
    previous_recall: float | None
    kept_recall: float | None
    # Earlier facts it no longer recalls (refused for them, or too few to refuse).
    lost: tuple[int, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict:
        return {
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "previous_recall": self.previous_recall,
            "kept_recall": self.kept_recall,
            "lost": list(self.lost),
        }


def _mean(values) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def lost_facts(previous: Mapping[int, float], kept: Mapping[int, float]) -> list[int]:
    """The earlier facts ``previous`` recalled and ``kept`` (a new version's quiz) does not."""
    return sorted(i for i, r in kept.items() if i in previous and previous[i] >= RECALLED and r < RECALLED)


def decide(
    previous: Mapping[int, float],
    kept: Mapping[int, float],
    locality: float,
    removed: Mapping[int, float],
    thresholds: GateThresholds,
    removed_baseline: Mapping[int, float] | None = None,
    removed_replies: Mapping[int, str] | None = None,
) -> GateDecision:
    """Compare a new version's per-fact recall with its predecessor's on the same facts.

    ``previous`` maps fact id to the predecessor's recall (facts it never measured
    are skipped), ``kept`` the new version's recall of earlier facts, ``removed``
    its recall of the facts that must be gone, ``removed_baseline`` the base
    model's recall of those (it never learnt them: a probe it answers by a guess,
    "O negative" for a blood type, is not a memory left behind), ``removed_replies``
    a reply that gave a removed fact away, quoted in the reason.
    """
    common = [i for i in kept if i in previous]
    before = _mean(float(previous[i] >= RECALLED) for i in common)
    after = _mean(float(kept[i] >= RECALLED) for i in common)
    had = [i for i in common if previous[i] >= RECALLED]
    lost = lost_facts(previous, kept)
    reasons = []
    if (
        before is not None
        and after is not None
        and before - after > thresholds.max_recall_drop + 1e-9
        and len(lost) >= min(thresholds.min_lost_facts, len(had))
    ):
        reasons.append(
            f"recall of {len(common)} earlier fact(s) fell from {before:.0%} to {after:.0%} "
            f"(allowed drop {thresholds.max_recall_drop:.0%}; lost ids {', '.join(map(str, lost))})"
        )
    if locality < thresholds.min_locality - 1e-9:
        reasons.append(f"locality {locality:.0%} is below the minimum {thresholds.min_locality:.0%}")
    baseline = removed_baseline or {}
    still = sorted(i for i, r in removed.items() if r > thresholds.max_removed_recall + baseline.get(i, 0.0) + 1e-9)
    if still:
        quoted = "".join(f'; {i}: "{removed_replies[i]}"' for i in still if (removed_replies or {}).get(i))
        reasons.append(
            f"still recalls {len(still)} fact(s) that should be gone (ids {', '.join(map(str, still))}{quoted})"
        )
    return GateDecision(not reasons, tuple(reasons), before, after, tuple(lost))


def recall_after_refusal(recall: Mapping[int, float], refused: Iterable[Mapping[int, float]]) -> dict[int, float]:
    """The per-fact recall a retry after a refusal plans with.

    Each earlier fact keeps its last measured recall, lowered to what a refused
    version measured where that was less: the facts the refused version pushed out
    then count as the weakest, so the retry (warm-started, bounded like any run)
    rehearses them first and twice and its gate quizzes them first
    (``training.memory.learn.weakest_first``, ``verify_sample``). A retry used to rebuild
    from scratch on every fact, a cost linear in the user's facts (about 870 s at
    21 and 23 facts against 130 s for a warm start, 2 CPU cores:
    docs/BENCHMARKS.md).
    """
    planned = dict(recall)
    for measured in refused:
        for fact_id, value in measured.items():
            planned[fact_id] = min(planned.get(fact_id, value), value)
    return planned
