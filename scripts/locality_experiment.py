"""Development experiment behind the replay defaults: adapter locality per replay setting.

    .venv/bin/python scripts/locality_experiment.py --out docs/locality-experiment.json

Teaches the first 3 bundled facts one at a time (the facts benchmark's ``memory``
learner, K=1, 40 steps) under each setting and reports the adapter's own
locality on the 50 locality prompts, how many of the 10 personal-phrased ones
changed, and recall. Settings: ``small`` = the first 28 replay prompts, KL weight
4, replay share 0.4 (the defaults before); ``big`` = all replay prompts, same KL
and share; ``default`` = all replay prompts with the current defaults.
"""

from __future__ import annotations

import argparse
import json
from argparse import Namespace
from dataclasses import replace
from pathlib import Path

import training.replay as replay
from training.adapters import AdapterHost
from training.bench.facts import DEFAULT_FACTS, Learner, load_facts, recall_of
from training.gate import GateThresholds
from training.model import load_model, prepare_base_model

SETTINGS = {"small": (28, 4.0, 0.4), "big": (None, 4.0, 0.4), "default": (None, None, None)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settings", default="small,big,default")
    parser.add_argument("--facts", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path(".cache/locality-experiment"))
    parser.add_argument("--out", type=Path, default=Path("docs/locality-experiment.json"))
    args = parser.parse_args()
    host = AdapterHost(load_model(prepare_base_model(None, Path(".cache/models"))))
    facts = load_facts(DEFAULT_FACTS)[: args.facts]
    all_replay, results = replay.REPLAY_PROMPTS, {}
    for name in args.settings.split(","):
        n_replay, kl, share = SETTINGS[name]
        replay.REPLAY_PROMPTS = all_replay[:n_replay] if n_replay else all_replay
        options = Namespace(replay_cache=args.work / "replay.json", lr=5e-4, steps=40, seed=0, k=1, max_rehearsal=24)
        learner = Learner(host, "memory", args.work / name, options)
        build = learner._request

        def request(*a, _build=build, _kl=kl, _share=share, **k):
            made = _build(*a, **k)
            train = replace(made.train, kl_weight=_kl) if _kl is not None else made.train
            return replace(made, train=train, replay_share=_share if _share is not None else made.replay_share)

        learner._request = request
        rows = []
        for fact in facts:
            seconds, locality, changed = learner.teach(fact, GateThresholds(0.2, 0.0, 0.0))
            recall = recall_of(host, learner.live, facts[: fact.index + 1])
            personal = [c for c in changed if c in replay.PERSONAL_LOCALITY_PROMPTS]
            rows.append(
                {
                    "n": fact.index + 1,
                    "locality": locality,
                    "changed_general": len(changed) - len(personal),
                    "changed_personal": len(personal),
                    "recall": sum(recall.values()) / len(recall),
                    "seconds": round(seconds),
                }
            )
            print(name, rows[-1], flush=True)
        results[name] = rows
    replay.REPLAY_PROMPTS = all_replay
    args.out.write_text(json.dumps({"settings": SETTINGS, "results": results}, indent=1))


if __name__ == "__main__":
    main()
