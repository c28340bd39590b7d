"""How well a question finds its fact's group among many: fact groups at 100 facts.

    .venv/bin/python scripts/group_routing.py --out docs/group-routing.json
    .venv/bin/python scripts/group_routing.py --groups 0,2,4,6,8   # train half (two processes side by side)
    # group 0 answered by the adapter the facts benchmark taught its 10 facts one at a time:
    .venv/bin/python -m training.bench facts --methods memory --n 10 --forget 0 --out /tmp/chain0/bench.json
    .venv/bin/python scripts/group_routing.py --replace 0=/tmp/chain0/bench.json --forget 0 --out /tmp/chain0.json

The first ``--n`` bundled facts are split into groups of ``--group-size`` in
order, and each group's adapter is trained with the worker's code
(``learn_facts``: self-QA self-edits, KL replay; all of a group's facts in one
consolidation of ``--steps`` steps, a proxy for teaching them one at a time,
which the facts benchmark does). Trained adapters are kept in ``--adapters``
and reused. Then every benchmark question (never trained on) is answered by
the group each routing rule picks, and graded:

- ``oracle``: its own fact's group (what routing cannot beat);
- ``words``: ``training.groups.candidate_groups``, the first candidate;
- ``confidence``: the adapter most sure of its reply, among all groups;
- ``words+confidence``: ``training.groups.choose_group``, the rule used;
- ``... (no synonyms)``: the same without merging everyday synonyms
  (``training.groups.SYNONYMS``), as the rule was before.

Then, as the product serves (``served``): scope routing in front of the groups
(``training.scope.Scope`` over all the facts, with the topic embedder), the base
model answering what it sends away. Served locality counts a general prompt as
changed when scope sends it to the adapters and the group routing picks is one
whose own locality quiz changed it (each group's ``trained.json``); the facts
benchmark's bound (any group changed it) is reported beside it.

Last, ``--forget`` facts (a seeded sample) are forgotten as the worker does for
groups: each group holding one is rebuilt without it (the same recipe, the
removed facts quizzed), a group left empty is dropped, the others are untouched;
forgotten and kept facts are then asked again through routing.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

from training.adapters import AdapterHost
from training.bench.facts import DEFAULT_FACTS, load_facts
from training.chat import ChatMessage, generate_batch_scored, with_system_prompt
from training.groups import candidate_groups, choose_group, most_confident
from training.learn import FACT_KL_WEIGHT, FactToLearn, LearnRequest, learn_facts
from training.lora import TrainConfig
from training.model import load_model, prepare_base_model
from training.quiz import contains_answer
from training.replay import LOCALITY_PROMPTS
from training.scope import Scope, TopicEmbedder, topic_words

TRAINED = "trained.json"  # beside each group's adapter: its training result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts-file", type=Path, default=DEFAULT_FACTS)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--steps", type=int, default=120, help="optimiser steps per group")
    parser.add_argument("--groups", default=None, help="train only these groups (comma-separated), then stop")
    parser.add_argument("--forget", type=int, default=5, help="facts forgotten at the end (0: skip)")
    parser.add_argument("--seed", type=int, default=0, help="which facts are forgotten")
    parser.add_argument(
        "--confidence-tokens",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[4, 2],
        help="also route by the confidence of only this many first tokens (comma-separated; 8 is the main rule)",
    )
    parser.add_argument(
        "--replace",
        action="append",
        default=[],
        metavar="G=BENCH_OUT",
        help="answer group G with the adapter a facts benchmark (--methods memory, the same facts) "
        "taught one at a time: its --out JSON; the steps and state beside it are read",
    )
    parser.add_argument("--adapters", type=Path, default=Path(".cache/group-routing"))
    parser.add_argument("--out", type=Path, default=Path("docs/group-routing.json"))
    args = parser.parse_args()
    folder = prepare_base_model(None, Path(".cache/models"))
    host = AdapterHost(load_model(folder))
    facts = load_facts(args.facts_file)[: args.n]
    groups = {
        g: facts[g * args.group_size : (g + 1) * args.group_size] for g in range(-(-len(facts) // args.group_size))
    }
    adapters = args.adapters / f"{args.facts_file.stem}-n{args.n}-g{args.group_size}-s{args.steps}"
    replay = Path(".cache/replay") / f"{folder.name}.json"
    only = [int(g) for g in args.groups.split(",")] if args.groups else list(groups)
    for g in only:
        train_group(host, adapters / f"g{g}", g, groups[g], [], replay, args.steps)
    if args.groups:
        return

    folders = {g: adapters / f"g{g}" for g in groups}
    for spec in args.replace:
        g, out = spec.split("=", 1)
        folders[int(g)] = taught_one_at_a_time(Path(out), groups[int(g)])
    questions = [(f.index, q, answers) for f in facts for q, answers in f.questions]
    asked = [q for _, q, _ in questions]
    replies = group_replies(host, folders, asked)
    replies[BASE] = group_replies(host, {BASE: None}, asked)[BASE]
    texts = {g: [f.text for f in mine] for g, mine in groups.items()}

    def pick(rule: str, k: int, fact: int, question: str) -> int:
        def scores(candidates):
            return {g: replies[g][k][1] for g in candidates}

        if rule == "oracle":
            return fact // args.group_size
        if rule == "words":
            return candidate_groups(question, texts)[0]
        if rule == "words (no synonyms)":
            return candidate_groups(question, texts, topic_words)[0]
        if rule == "confidence":
            return most_confident(list(groups), scores)
        if rule == "words+confidence (no synonyms)":
            return choose_group(question, texts, scores, topic_words)
        return choose_group(question, texts, scores)

    n_first = sum(1 for i, _, _ in questions if i < args.group_size)
    rows = {}

    def add_row(rule: str, chosen: list[int]) -> None:
        """Grade every question by the full reply of the group ``chosen`` for it."""
        right = recalled = first = 0
        for k, ((i, _, answers), g) in enumerate(zip(questions, chosen, strict=True)):
            ok = contains_answer(replies[g][k][0], answers)
            right += g == i // args.group_size
            recalled += ok
            first += ok and i < args.group_size
        rows[rule] = {
            "right_group": round(right / len(questions), 3),
            "recall_all": round(recalled / len(questions), 3),
            "recall_first_group": round(first / n_first, 3),
        }
        print(f"{rule:>30}: {rows[rule]}")

    rules = (
        "oracle",
        "words",
        "words (no synonyms)",
        "confidence",
        "words+confidence",
        "words+confidence (no synonyms)",
    )
    for rule in rules:
        add_row(rule, [pick(rule, k, i, q) for k, (i, q, _) in enumerate(questions)])

    # The serving engine's routing generates only the confidence tokens
    # (``engine.ROUTING_TOKENS``): fewer is faster; does routing hold up?
    for n in args.confidence_tokens:
        short = group_replies(host, folders, asked, n, n)
        add_row(f"words+confidence, {n} tokens", routed(asked, texts, short))

    # Narrowing the candidates by the base model's sentence embedding (the scope
    # check's ``TopicEmbedder``, no adapter run): the group of the nearest fact,
    # or the adapters' confidence among the groups of the 3 nearest facts.
    topics = TopicEmbedder.of_host(host)
    ranked = [nearest_groups(topics, q, texts) for q in asked]
    words_first = [candidate_groups(q, texts) for q in asked]
    add_row(
        "words+nearest fact",
        [c[0] if len(c) == 1 else next(g for g in r if g in c) for c, r in zip(words_first, ranked, strict=True)],
    )
    for top in (2, 3):
        chosen = []
        for k, (c, r) in enumerate(zip(words_first, ranked, strict=True)):
            narrowed = [g for g in r if g in c][:top] if len(c) > top else c
            chosen.append(most_confident(narrowed, lambda groups, k=k: {g: replies[g][k][1] for g in groups}))
        add_row(f"words+nearest {top}+confidence", chosen)

    report_served = serve(host, folders, texts, replies, questions, topics, args.group_size)
    print(f"{'served':>30}: {report_served}")
    report = {
        "replaced": args.replace,
        "facts_file": str(args.facts_file),
        "n": len(facts),
        "group_size": args.group_size,
        "rules": rows,
        "served": report_served,
    }
    if args.forget:
        gone = random.Random(args.seed).sample(facts, min(args.forget, len(facts)))
        report["forget"] = forget(host, adapters, groups, gone, replies, questions, topics, replay, args)
        print(f"{'forget':>30}: {report['forget']}")
    args.out.write_text(json.dumps(report, indent=1))


BASE = -1  # the base model's replies, beside the groups'


def taught_one_at_a_time(bench_out: Path, mine) -> Path:
    """The live adapter of a facts-benchmark run that taught ``mine`` one at a
    time (``memory`` method), with its ``trained.json`` (what its last step's
    locality quiz changed) written beside a copy of it."""
    state = json.loads((bench_out.with_suffix(".state") / "memory" / "state.json").read_text())
    steps = [json.loads(line) for line in bench_out.with_suffix(".steps.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["method"] == "memory"]
    if [s["fact"] for s in steps] != [f.text for f in mine]:
        raise SystemExit(f"{bench_out}: it did not teach this group's {len(mine)} facts in order")
    accepted = [s for s in steps if s["locality"] is not None]
    if not accepted or state["adapter"] is None:
        raise SystemExit(f"{bench_out}: every version was refused, no adapter to answer with")
    copy = bench_out.parent / "chain-adapter"
    shutil.copytree(bench_out.with_suffix(".state") / "memory" / state["adapter"], copy, dirs_exist_ok=True)
    (copy / TRAINED).write_text(
        json.dumps(
            {
                "locality": accepted[-1]["locality"],
                "locality_changed": accepted[-1]["locality_changed"],
                "recall_just_taught": {s["fact"]: s["recall_new"] for s in steps},
                "recall_at_end": steps[-1]["recall_by_fact"],
            }
        )
    )
    return copy


def train_group(host, out: Path, g: int, mine, removed, replay: Path, steps: int) -> None:
    """One group's adapter in one consolidation (kept in ``out`` and reused), and
    what its quizzes found (``trained.json``)."""
    if (out / TRAINED).is_file():
        return
    started = time.perf_counter()
    result = learn_facts(
        host,
        LearnRequest(
            adapter_name=f"route-g{g}",
            new_facts=[FactToLearn(f.index, f.text) for f in mine],
            rehearsal=[],
            removed=[FactToLearn(f.index, f.text) for f in removed],
            output_dir=out,
            replay_cache=replay,
            train=TrainConfig(learning_rate=5e-4, max_steps=steps, seed=g, kl_weight=FACT_KL_WEIGHT),
        ),
    )
    seconds = time.perf_counter() - started
    print(f"group {g}: {seconds:.0f} s, self-quiz {result.recall:.2f}, locality {result.locality:.2f}", flush=True)
    (out / TRAINED).write_text(
        json.dumps(
            {
                "seconds": round(seconds, 1),
                "self_quiz": result.recall,
                "locality": result.locality,
                "locality_changed": list(result.locality_changed),
                "removed_recall": {str(k): v for k, v in result.removed_recall.items()},
            }
        )
    )


def group_replies(
    host, folders: dict[int, Path | None], prompts: list[str], tokens: int = 40, confidence_tokens: int = 8
) -> dict[int, list[tuple[str, float]]]:
    """Each group's greedy reply (``tokens`` long) and confidence (the mean
    log-probability of its first ``confidence_tokens``) on every prompt (``None``: the base model)."""
    conversations = [with_system_prompt([ChatMessage("user", p)]) for p in prompts]
    out = {}
    for g, path in folders.items():
        name = None if path is None else f"route-g{g}"
        if name is not None:
            host.load(name, path)
        try:
            with host.using(name) as model:
                out[g] = generate_batch_scored(model, host.tokenizer, conversations, tokens, confidence_tokens)
        finally:
            if name is not None:
                host.unload(name)
    return out


def nearest_groups(topics: TopicEmbedder, question: str, texts: dict[int, list[str]]) -> list[int]:
    """Every group, nearest first: by its fact most similar to ``question``."""
    flat = [(g, t) for g, mine in texts.items() for t in mine]
    sims = topics.similarities(question, [t for _, t in flat]).tolist()
    best: dict[int, float] = {}
    for (g, _), sim in zip(flat, sims, strict=True):
        best[g] = max(best.get(g, -2.0), sim)
    return sorted(best, key=lambda g: -best[g])


def routed(prompts: list[str], texts, replies) -> list[int]:
    """The group ``choose_group`` picks for each prompt, by words and then the
    confidence in ``replies`` (each group's, in the order of ``prompts``)."""
    return [choose_group(p, texts, lambda c, k=k: {g: replies[g][k][1] for g in c}) for k, p in enumerate(prompts)]


def served(prompts: list[str], texts, replies, scope: Scope) -> list[int]:
    """Who answers each prompt in the product: ``BASE`` where scope routing keeps
    it from the adapters, else the group ``routed`` picks."""
    groups = routed(prompts, texts, replies)
    return [g if scope.message(p) else BASE for p, g in zip(prompts, groups, strict=True)]


def graded(questions, who: list[int], replies) -> dict[int, float]:
    """Each fact's share of its questions answered right by whoever ``who`` says answered."""
    out: dict[int, list[bool]] = {}
    for k, (i, _, answers) in enumerate(questions):
        out.setdefault(i, []).append(contains_answer(replies[who[k]][k][0], answers))
    return {i: sum(v) / len(v) for i, v in out.items()}


def _mean(values) -> float:
    values = list(values)
    return round(sum(values) / len(values), 3) if values else 0.0


def serve(host, folders, texts, replies, questions, topics, size: int) -> dict:
    """Recall and locality as served: scope routing first, then the group routing."""
    scope = Scope([t for mine in texts.values() for t in mine], topics.nearer_to_facts)
    who = served([q for _, q, _ in questions], texts, replies, scope)
    recall = graded(questions, who, replies)
    trained = {g: json.loads((path / TRAINED).read_text()) for g, path in folders.items()}
    to_adapters = [p for p in LOCALITY_PROMPTS if scope.message(p)]
    local = group_replies(host, folders, to_adapters) if to_adapters else {}
    changed = {g: set(t["locality_changed"]) for g, t in trained.items()}
    changed_by_any = set().union(*changed.values())
    chosen = routed(to_adapters, texts, local)
    return {
        "recall_all": _mean(recall.values()),
        "recall_first_group": _mean(v for i, v in recall.items() if i < size),
        "questions_to_base": round(who.count(BASE) / len(who), 3),
        "adapter_locality_mean": _mean(t["locality"] for t in trained.values()),
        "locality_prompts": len(LOCALITY_PROMPTS),
        "locality_prompts_routed": len(to_adapters),
        "served_locality": round(
            1 - sum(p in changed[g] for p, g in zip(to_adapters, chosen, strict=True)) / len(LOCALITY_PROMPTS), 3
        ),
        "served_locality_any_group": round(
            1 - sum(p in changed_by_any for p in to_adapters) / len(LOCALITY_PROMPTS), 3
        ),
    }


def forget(host, adapters: Path, groups, gone, replies, questions, topics, replay: Path, args) -> dict:
    """Forget ``gone`` as the worker does: rebuild each group that held one, drop a group left empty."""
    gone_ids = {f.index for f in gone}
    kept = {g: [f for f in mine if f.index not in gone_ids] for g, mine in groups.items()}
    touched = sorted({f.index // args.group_size for f in gone})
    folders = {g: adapters / f"g{g}" for g in groups if kept[g]}
    started = time.perf_counter()
    for g in touched:
        if kept[g]:
            folders[g] = adapters / f"forget{args.forget}-seed{args.seed}" / f"g{g}"
            train_group(host, folders[g], g, kept[g], [f for f in groups[g] if f.index in gone_ids], replay, args.steps)
    seconds = time.perf_counter() - started
    asked = [q for _, q, _ in questions]
    after = {**replies, **group_replies(host, {g: folders[g] for g in touched if g in folders}, asked)}
    texts = {g: [f.text for f in mine] for g, mine in kept.items() if mine}
    scope = Scope([t for mine in texts.values() for t in mine], topics.nearer_to_facts)
    as_served = graded(questions, served(asked, texts, after, scope), after)
    as_routed = graded(questions, routed(asked, texts, after), after)
    before_texts = {g: [f.text for f in mine] for g, mine in groups.items()}
    before = graded(questions, routed(asked, before_texts, replies), replies)
    base = graded(questions, [BASE] * len(questions), replies)
    return {
        "forgotten": [f.text for f in gone],
        "groups_rebuilt": [g for g in touched if kept[g]],
        "groups_dropped": [g for g in touched if not kept[g]],
        "seconds": round(seconds, 1),
        "forgotten_recall_before": _mean(before[i] for i in gone_ids),
        "forgotten_recall": _mean(as_routed[i] for i in gone_ids),
        "forgotten_recall_served": _mean(as_served[i] for i in gone_ids),
        "forgotten_recall_base_model": _mean(base[i] for i in gone_ids),
        "kept_recall_before": _mean(v for i, v in before.items() if i not in gone_ids),
        "kept_recall": _mean(v for i, v in as_routed.items() if i not in gone_ids),
        "kept_recall_served": _mean(v for i, v in as_served.items() if i not in gone_ids),
        "kept_in_rebuilt_groups_before": _mean(before[f.index] for g in touched for f in kept[g]),
        "kept_in_rebuilt_groups": _mean(as_routed[f.index] for g in touched for f in kept[g]),
    }


if __name__ == "__main__":
    main()
