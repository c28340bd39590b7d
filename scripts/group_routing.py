"""How well a question finds its fact's group among many: fact groups at 100 facts.

    .venv/bin/python scripts/group_routing.py --out docs/group-routing.json
    .venv/bin/python scripts/group_routing.py --groups 0,2,4,6,8   # train half (two processes side by side)

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
"""

from __future__ import annotations

import argparse
import json
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
from training.scope import topic_words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts-file", type=Path, default=DEFAULT_FACTS)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--group-size", type=int, default=10)
    parser.add_argument("--steps", type=int, default=120, help="optimiser steps per group")
    parser.add_argument("--groups", default=None, help="train only these groups (comma-separated), then stop")
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
    only = [int(g) for g in args.groups.split(",")] if args.groups else list(groups)
    for g in only:
        if (adapters / f"g{g}" / "adapter_model.safetensors").is_file():
            continue
        started = time.perf_counter()
        result = learn_facts(
            host,
            LearnRequest(
                adapter_name=f"route-g{g}",
                new_facts=[FactToLearn(f.index, f.text) for f in groups[g]],
                rehearsal=[],
                output_dir=adapters / f"g{g}",
                replay_cache=Path(".cache/replay") / f"{folder.name}.json",
                train=TrainConfig(learning_rate=5e-4, max_steps=args.steps, seed=g, kl_weight=FACT_KL_WEIGHT),
            ),
        )
        seconds = time.perf_counter() - started
        print(f"group {g}: {seconds:.0f} s, self-quiz {result.recall:.2f}, locality {result.locality:.2f}", flush=True)
    if args.groups:
        return

    questions = [(f.index, q, answers) for f in facts for q, answers in f.questions]
    conversations = [with_system_prompt([ChatMessage("user", q)]) for _, q, _ in questions]
    replies = {}  # group -> [(reply, confidence)] per question
    for g in groups:
        host.load(f"route-g{g}", adapters / f"g{g}")
        with host.using(f"route-g{g}") as model:
            replies[g] = generate_batch_scored(model, host.tokenizer, conversations, max_new_tokens=40)
        host.unload(f"route-g{g}")
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

    rows = {}
    n_first = sum(1 for i, _, _ in questions if i < args.group_size)
    rules = (
        "oracle",
        "words",
        "words (no synonyms)",
        "confidence",
        "words+confidence",
        "words+confidence (no synonyms)",
    )
    for rule in rules:
        right = recalled = first = 0
        for k, (i, q, answers) in enumerate(questions):
            g = pick(rule, k, i, q)
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
    args.out.write_text(
        json.dumps(
            {"facts_file": str(args.facts_file), "n": len(facts), "group_size": args.group_size, "rules": rows},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
