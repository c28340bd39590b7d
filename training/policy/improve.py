"""Improve the self-edit policy offline: ReST-EM rounds on SQuAD v1.1 *train* passages.

    python -m training.policy.improve --store .cache/policy --rounds 2 --n 8 --eval-n 6 --k 4
    python -m training.policy.improve --store .cache/policy --list
    python -m training.policy.improve --store .cache/policy --rollback

Held-out passages are a fixed seeded sample of the train split, disjoint from
every round's training passages; dev passages (the benchmark's) are never used.
Each round writes ``<store>/v<N>`` and ``<store>/rounds/r<N>/result.json``; a
round that improves the held-out score is promoted (``<store>/active.json``),
so the next round starts from it. A run that crashed is resumed by running the
same command again. Use a version in the benchmark with
``python -m benchmarks.squad --policy <store>/v<N>``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from training.adapters import AdapterHost
from training.model import load_model, prepare_base_model
from training.policy.rest_em import RoundConfig, RoundOutcome, StudyInput, run_round
from training.policy.rest_em_work import passage_work
from training.policy.squad import Passage, ensure_squad, load_passages, sample_passages
from training.replay import load_or_build
from training.seal.policy import BASE_LABEL, PolicyStore, read_manifest

log = logging.getLogger(__name__)


def as_input(passage: Passage) -> StudyInput:
    return StudyInput(
        passage.passage_id,
        f"{passage.title}\n{passage.context}",
        tuple((q.question, q.answers) for q in passage.questions),
    )


def split_passages(
    passages: list[Passage], n: int, eval_n: int, seed: int, round_number: int
) -> tuple[list[Passage], list[Passage]]:
    """A fixed held-out sample, and a per-round training sample drawn from the rest."""
    held_out = sample_passages(list(passages), eval_n, seed=10_000 + seed)
    held_ids = {p.passage_id for p in held_out}
    pool = [p for p in passages if p.passage_id not in held_ids]
    return sample_passages(pool, n, seed=seed * 1000 + round_number), held_out


def run_rounds(host: AdapterHost, store: PolicyStore, args, replay) -> list[RoundOutcome]:
    if args.passages_file:
        train_pool = load_passages(args.passages_file)
        held_out = load_passages(args.eval_passages_file)
    else:
        train_pool = load_passages(ensure_squad(args.cache_dir / "squad", "train"))
        held_out = None
    config = RoundConfig(
        k=args.k,
        families=tuple(args.families),
        inner_max_steps=args.max_steps,
        max_new_tokens=args.max_new_tokens,
        policy_max_steps=args.policy_max_steps,
        seed=args.seed,
    )
    outcomes = []
    for _ in range(args.rounds):
        number = _unfinished_round(store) or store.next_number()
        parent = store.active()
        if held_out is None:
            train, evaluate = split_passages(train_pool, args.n, args.eval_n, args.seed, number)
        else:
            train, evaluate = train_pool[: args.n], held_out[: args.eval_n]
        outcome = run_round(
            store.root / "rounds" / f"r{number}",
            store.version_dir(number),
            parent,
            [as_input(p) for p in train],
            [as_input(p) for p in evaluate],
            config,
            passage_work(host, parent, config, replay),
            source="squad",
            progress=lambda stage, fraction: log.info("%s (%.0f%%)", stage, fraction * 100),
        )
        if outcome.improved and outcome.version is not None:
            store.promote(outcome.version.name)
        _print_round(number, outcome)
        outcomes.append(outcome)
    return outcomes


def _unfinished_round(store: PolicyStore) -> int | None:
    for config in sorted(store.root.glob("rounds/r*/config.json")):
        if not (config.parent / "result.json").is_file():
            return int(json.loads(config.read_text())["version"])
    return None


def _print_round(number: int, outcome: RoundOutcome) -> None:
    m = outcome.metrics
    verdict = "promoted" if outcome.improved else f"not promoted ({m.get('reason')})"
    held_out = f"{m['eval_before']:.3f} -> {m['eval_after']:.3f}" if "eval_after" in m else "not evaluated"
    print(
        f"round {number}: {m['n_kept']}/{m['n_inputs']} inputs kept (mean gain {m['kept_gain_mean']:.3f}); "
        f"held-out {held_out}; {verdict}; {m['seconds']['total']:.0f} s, {m['cpu_hours']:.3f} CPU-h"
    )


def list_versions(store: PolicyStore) -> None:
    active = store.active()
    print(f"active: {active.name if active else BASE_LABEL + ' (untrained)'}")
    for ref in store.versions():
        m = read_manifest(ref.path)["metrics"]
        print(
            f"{ref.name}: parent {m['parent']}, kept {m['n_kept']}/{m['n_inputs']}, "
            f"held-out {m.get('eval_before')} -> {m.get('eval_after')}, improved {m['improved']}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.policy.improve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, default=Path(".cache/policy"), help="policy versions directory")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--n", type=int, default=8, help="training passages per round")
    parser.add_argument("--eval-n", type=int, default=6, help="held-out passages")
    parser.add_argument("--k", type=int, default=4, help="self-edits sampled per passage")
    parser.add_argument("--families", nargs="+", default=["implications"])
    parser.add_argument("--max-steps", type=int, default=20, help="LoRA steps per applied self-edit")
    parser.add_argument("--max-new-tokens", type=int, default=192)
    parser.add_argument("--policy-max-steps", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--passages-file", type=Path, help="training passages, SQuAD JSON (instead of SQuAD train)")
    parser.add_argument("--eval-passages-file", type=Path, help="held-out passages, SQuAD JSON")
    parser.add_argument("--base-model", default=None)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--replay-cache", type=Path, help="base-model replay answers (default: under --cache-dir)")
    parser.add_argument("--list", action="store_true", help="list versions and exit")
    parser.add_argument("--promote", metavar="NAME", help="make version NAME (or 'base') the active policy")
    parser.add_argument("--rollback", action="store_true", help="go back to the active version's parent")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    store = PolicyStore(args.store)
    if args.list:
        list_versions(store)
        return 0
    if args.promote:
        store.promote(None if args.promote == BASE_LABEL else args.promote)
        list_versions(store)
        return 0
    if args.rollback:
        store.rollback()
        list_versions(store)
        return 0
    if bool(args.passages_file) != bool(args.eval_passages_file):
        parser.error("--passages-file and --eval-passages-file go together")
    torch.manual_seed(args.seed)
    folder = prepare_base_model(args.base_model, args.cache_dir / "models")
    host = AdapterHost(load_model(folder))
    with host.using(None):
        cache = args.replay_cache or args.cache_dir / "replay" / f"{folder.name}.json"
        replay = load_or_build(host.peft, host.tokenizer, cache)
    run_rounds(host, store, args, replay["replay"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
