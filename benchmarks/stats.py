"""Confidence intervals for benchmark tables."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for a proportion (well-behaved near 0 and 1)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: Sequence[float], z: float = 1.96) -> tuple[float, float]:
    if not values:
        return (0.0, 0.0)
    mean = sum(values) / len(values)
    if len(values) < 2:
        return (mean, mean)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = z * sd / math.sqrt(len(values))
    return (mean - half, mean + half)


def bootstrap_gain_and_ratio(
    passages: Sequence[tuple[int, int, int, int]], resamples: int = 5000, seed: int = 0
) -> dict[str, float | list[float]]:
    """SQuAD's goal, with 95 % intervals from resampling passages (questions of one passage move together).

    ``passages``: (questions, correct for the method, correct for the baseline,
    correct for the ceiling). Gain = method minus baseline accuracy, in points;
    ratio = method accuracy over the ceiling's.
    """
    if not passages:
        raise ValueError("no passages to resample")
    rng = random.Random(seed)

    def gain_ratio(sample: Sequence[tuple[int, int, int, int]]) -> tuple[float, float]:
        n, method, base, ceiling = (sum(column) for column in zip(*sample, strict=True))
        return 100 * (method - base) / n, (method / ceiling if ceiling else math.inf)

    gains, ratios = [], []
    for _ in range(resamples):
        gain, ratio = gain_ratio(rng.choices(passages, k=len(passages)))
        gains.append(gain)
        ratios.append(ratio)

    def interval(values: list[float]) -> list[float]:
        values.sort()
        return [round(values[int(0.025 * len(values))], 4), round(values[int(0.975 * len(values)) - 1], 4)]

    gain, ratio = gain_ratio(passages)
    return {
        "gain_points": round(gain, 4),
        "gain_ci95": interval(gains),
        "ratio": round(ratio, 4),
        "ratio_ci95": interval(ratios),
        "resamples": resamples,
    }
