"""Serving benchmark for fact groups: what routing a question among a user's group
adapters costs, and what a promotion loads when only one group changed.

    python -m benchmarks.group_serving [--groups 1,5,10] [--reps 5] [--out docs/bench-group-serving.json]

For each number of groups G, a version of G adapters with the project-wide LoRA
shape (untrained: the cost of routing and loading does not depend on the weights),
each group holding one bundled fact. Measured in one process, against the time
to the first token of the same question on one adapter, in the same run:

- ``words``: ``ServingEngine.choose`` for a question whose words point at one group
  with no routing floor (no adapter runs), and ``words_floor``: the same with the
  floor (``SEALCHAT_ROUTING_FLOOR``, -0.5 when it is off), so the chosen
  adapter's confidence is computed (one adapter's ``ROUTING_TOKENS`` tokens);
  ``words_grounded``: the same with the grounding check too (the product's
  default, ``SEALCHAT_GROUNDING_CHECK``: the chosen adapter decodes the first
  sentence of its reply, at most ``GROUNDING_TOKENS`` tokens), under a floor every
  reply passes so that the check always runs; the other rows run without it;
- ``confidence``: the same for a question sharing no word with any fact, so every
  group's adapter starts a reply (``engine.ROUTING_TOKENS`` tokens) and the surest answers;
- ``confidence_by_tokens``: the same with other numbers of routing tokens
  (``--routing-tokens``), in the same run;
- ``swap_one_changed``: promoting a version that differs from the live one in one
  group (one adapter loaded), against ``swap_all``: a version none of whose
  adapters are loaded.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from app.adapters.service import AdapterRef, GroupRef
from app.serving.engine import ROUTING_TOKENS, ServingEngine
from app.settings import get_settings
from benchmarks.serving import timed_stream
from training.routing.groups import DEFAULT_ROUTING_FLOOR, GROUNDING_TOKENS

FACTS = [
    "My cat is called Biscotti.",
    "I work at Globex Corporation.",
    "My sister lives in Lisbon.",
    "I play the cello.",
    "My car is a red Volvo.",
    "I was born in Naples.",
    "My favourite food is ramen.",
    "I am allergic to peanuts.",
    "My daughter is called Emma.",
    "I run every morning.",
]
PASSED_BY_ALL = -1e9  # a routing floor no reply is below
BY_WORDS = "What is my cat's name?"  # shares "cat" with group 0 only
NO_SHARED_WORD = "What do you know about me?"


def make_version(engine: ServingEngine, root: Path, version: int, groups: int, changed: int | None) -> AdapterRef:
    """A version of ``groups`` adapters; all but ``changed`` named (and stored) as in version 1."""
    parts = []
    for k in range(groups):
        built = version if (version == 1 or k == changed) else 1
        name = f"u1-g{k}-v{built}"
        folder = root / f"v{built}" / f"g{k}"
        if not folder.is_dir():
            engine.host.add_fresh(name)
            engine.host.save(name, folder)
            engine.host.unload(name)
        parts.append(GroupRef(k, name, folder, (FACTS[k % len(FACTS)],)))
    return AdapterRef(f"u1-v{version}", root / f"v{version}", tuple(parts))


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", default="1,5,10", help="numbers of groups to measure, comma-separated")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--routing-tokens", default="8", help="also time routing with these token counts")
    parser.add_argument("--out", type=Path, default=Path("docs/bench-group-serving.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = get_settings()
    engine = ServingEngine(settings)
    engine.start()
    floor = settings.routing_floor if settings.routing_floor is not None else DEFAULT_ROUTING_FLOOR
    settings.grounding_check = False
    rows = {}
    for count in (int(g) for g in args.groups.split(",")):
        root = Path(tempfile.mkdtemp(prefix=f"sealchat-groups-{count}-"))
        live = make_version(engine, root, 1, count, None)
        engine.preload(1, live)
        baseline, words, words_floor, confidence, swap_one, swap_all = [], [], [], [], [], []
        words_grounded, confidence_grounded = [], []
        others = {int(t): [] for t in args.routing_tokens.split(",") if t}
        for rep in range(args.reps):
            baseline.append(timed_stream(engine, live, True, BY_WORDS, 1, adapter=live.parts[0].name)[0])
            settings.routing_floor = None
            words.append(timed(lambda ref=live: engine.choose(1, ref, BY_WORDS)))
            settings.routing_floor = floor
            words_floor.append(timed(lambda ref=live: engine.choose(1, ref, BY_WORDS)))
            confidence.append(timed(lambda ref=live: engine.choose(1, ref, NO_SHARED_WORD)))
            # The untrained adapters are unsure of everything: a floor every reply
            # passes, so that the grounding check always runs after it.
            settings.grounding_check, settings.routing_floor = True, PASSED_BY_ALL
            words_grounded.append(timed(lambda ref=live: engine.choose(1, ref, BY_WORDS)))
            confidence_grounded.append(timed(lambda ref=live: engine.choose(1, ref, NO_SHARED_WORD)))
            settings.grounding_check, settings.routing_floor = False, floor
            for tokens, times in others.items():
                engine.routing_tokens = tokens
                times.append(timed(lambda ref=live: engine.choose(1, ref, NO_SHARED_WORD)))
                engine.routing_tokens = ROUTING_TOKENS
            # A promotion that retrained one group: only that adapter is loaded.
            newer = make_version(engine, root, rep + 2, count, rep % count)
            swap_one.append(timed(lambda ref=newer: engine.preload(1, ref)))
            engine.preload(1, None)  # nothing loaded: the next swap loads every group
            swap_all.append(timed(lambda ref=live: engine.preload(1, ref)))
        rows[count] = {
            "ttft_one_adapter_s": round(statistics.median(baseline), 3),
            "choose_by_words_s": round(statistics.median(words), 4),
            "choose_by_confidence_s": round(statistics.median(confidence), 3),
            "choose_by_words_with_floor_s": round(statistics.median(words_floor), 3),
            "choose_by_words_with_floor_and_grounding_s": round(statistics.median(words_grounded), 3),
            "choose_by_confidence_with_grounding_s": round(statistics.median(confidence_grounded), 3),
            "swap_one_changed_s": round(statistics.median(swap_one), 3),
            "swap_all_s": round(statistics.median(swap_all), 3),
            "routing_tokens": ROUTING_TOKENS,
            "confidence_by_tokens_s": {t: round(statistics.median(v), 3) for t, v in others.items()},
            "reps": args.reps,
        }
        engine.preload(1, None)
    summary = {
        "routing_floor": floor,
        "grounding_tokens": GROUNDING_TOKENS,
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)",
        "groups": rows,
    }
    header = ("groups", "TTFT 1 adapter", "choose: words", "choose: confidence", "swap: 1 changed", "swap: all")
    print("".join(f"{h:>20}" for h in header))
    for count, row in rows.items():
        keys = ("ttft_one_adapter_s", "choose_by_words_s", "choose_by_confidence_s", "swap_one_changed_s", "swap_all_s")
        values = [count, *(row[k] for k in keys)]
        print("".join(f"{v:>20}" for v in values))
        print(f"{'':>20}{'':>20}{'with floor: ' + str(row['choose_by_words_with_floor_s']):>20}")
        print(
            f"{'':>20}{'':>20}{'and grounding: ' + str(row['choose_by_words_with_floor_and_grounding_s']):>20}"
            f"{'grounding: ' + str(row['choose_by_confidence_with_grounding_s']):>20}"
        )
        for tokens, seconds in row["confidence_by_tokens_s"].items():
            print(f"{'':>20}{'':>20}{'':>20}{f'{tokens} tokens: {seconds}':>20}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
