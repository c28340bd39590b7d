"""Locality inside the adapter: what LoRA geometry, KL weight and a smaller update cost in recall.

    python -m benchmarks.locality --n 3 --out docs/bench-locality.json

For each configuration, one simulated user teaches the first ``--n`` facts of a
dev set one at a time, exactly as the product learns them (``benchmarks.facts``'s
``memory`` learner: warm start, rehearsal, replay with a KL term to the base
model, the gate). After each fact it reports the adapter's own locality (the
share of the 50 held-out general prompts whose greedy answer is token for token
the base model's, with the adapter applied to every prompt: no routing) and the
recall of the facts taught so far. Configurations differ only in the LoRA
geometry (rank, target modules), the KL weight on replay, and whether the chosen
update is made smaller (``learn.shrink_update``: "product" drops its attention
layers where the quiz allows, "scaled" also scales it down; "unscaled" ones keep it
as trained).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from training.adapters import AdapterHost
from training.lora import LORA_SHAPE, LoraShape
from training.memory.fact_sets import DEFAULT_FACTS, load_facts
from training.memory.gate import GateThresholds
from training.memory.learn import ATTENTION_MODULES, FACT_KL_WEIGHT, SHRINK_SCALES, LearnRequest
from training.model import load_model, prepare_base_model

# name -> (LoRA shape, KL weight on replay, drop the attention layers' update if the
# quiz allows, scales tried on the chosen update)
CONFIGS: dict[str, tuple[LoraShape, float, bool, tuple[float, ...]]] = {
    "product": (LORA_SHAPE, FACT_KL_WEIGHT, True, ()),
    "scaled": (LORA_SHAPE, FACT_KL_WEIGHT, True, SHRINK_SCALES),
    "unscaled": (LORA_SHAPE, FACT_KL_WEIGHT, False, ()),
    "kl64-unscaled": (LORA_SHAPE, 64.0, False, ()),
    "attention-r8-unscaled": (LoraShape(rank=8, alpha=16, target_modules=ATTENTION_MODULES), FACT_KL_WEIGHT, False, ()),
    "mlp-down-r8-unscaled": (LoraShape(rank=8, alpha=16, target_modules=("down_proj",)), FACT_KL_WEIGHT, False, ()),
}


def run_config(name: str, folder: Path, facts, args) -> list[dict]:
    from benchmarks.facts import Learner

    shape, kl_weight, drop_attention, scales = CONFIGS[name]
    host = AdapterHost(load_model(folder), shape)
    work = args.cache_dir / "bench-locality" / name
    shutil.rmtree(work, ignore_errors=True)
    learner_args = SimpleNamespace(
        lr=args.lr,
        steps=args.steps,
        seed=args.seed,
        k=1,
        max_rehearsal=LearnRequest.max_rehearsal_facts,
        rehearsal_examples=LearnRequest.rehearsal_examples_per_fact,
        rehearsal_weight=LearnRequest.rehearsal_weight,
        replay_cache=args.cache_dir / "replay" / f"{folder.name}.json",
        kl_weight=kl_weight,
        drop_attention=drop_attention,
        shrink_scales=scales,
    )
    learner = Learner(host, "memory", work, learner_args, name=name)
    thresholds = GateThresholds()
    steps = []
    for n, fact in enumerate(facts, 1):
        seconds, locality, changed = learner.teach(fact, thresholds)
        recalled = learner.recall_of(facts[:n])
        steps.append(
            {
                "n": n,
                "fact": fact.text,
                "recall_new": recalled[fact.index],
                "recall_all": statistics.fmean(recalled.values()),
                "adapter_locality": None if locality != locality else round(locality, 4),
                "changed": len(changed),
                "refused_so_far": learner.refused,
                "seconds": round(seconds, 1),
            }
        )
        print(f"{name:>18} n={n} {steps[-1]}", flush=True)
    return steps


def summary(steps: list[dict]) -> dict:
    localities = [s["adapter_locality"] for s in steps if s["adapter_locality"] is not None]
    return {
        "adapter_locality_median": statistics.median(localities) if localities else None,
        "recall_new_mean": statistics.fmean(s["recall_new"] for s in steps),
        "recall_all_last": steps[-1]["recall_all"],
        "refused": steps[-1]["refused_so_far"],
        "seconds_median": statistics.median(s["seconds"] for s in steps),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.locality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts-file", type=Path, default=DEFAULT_FACTS, help="a dev set (never the test set)")
    parser.add_argument("--n", type=int, default=3, help="facts taught one at a time per configuration")
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {list(CONFIGS)}")
    parser.add_argument("--steps", type=int, default=40, help="max optimiser steps per consolidation")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--out", type=Path, default=Path("docs/bench-locality.json"))
    args = parser.parse_args(argv)
    names = [c for c in args.configs.split(",") if c]
    if unknown := set(names) - set(CONFIGS):
        parser.error(f"unknown configuration(s): {sorted(unknown)}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    folder = prepare_base_model(None, args.cache_dir / "models")
    facts = load_facts(args.facts_file)[: args.n]
    started = time.perf_counter()
    results: dict = {"facts_file": str(args.facts_file), "n": args.n, "configs": {}}
    for name in names:
        shape, kl_weight, drop_attention, scales = CONFIGS[name]
        steps = run_config(name, folder, facts, args)
        results["configs"][name] = {
            "rank": shape.rank,
            "target_modules": list(shape.target_modules),
            "kl_weight": kl_weight,
            "drop_attention": drop_attention,
            "shrink_scales": list(scales),
            "steps": steps,
            **summary(steps),
        }
        args.out.write_text(json.dumps(results, indent=1))  # each configuration kept as it ends
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(results, indent=1))
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    print(f"{results['n']} facts of {results['facts_file']} taught one at a time")
    header = f"{'config':<18} {'rank':>4} {'KL':>5} {'adapter locality':>16} {'recall new':>10} {'recall all':>10}"
    print(f"{header} {'s/fact':>7}")
    for name, r in results["configs"].items():
        print(
            f"{name:<18} {r['rank']:>4} {r['kl_weight']:>5.0f} {r['adapter_locality_median']:>16} "
            f"{r['recall_new_mean']:>10.2f} {r['recall_all_last']:>10.2f} {r['seconds_median']:>7}"
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
