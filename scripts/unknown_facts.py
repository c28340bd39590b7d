"""What the product answers about facts a user never taught: a confidence floor's measurement.

    .venv/bin/python scripts/unknown_facts.py /tmp/b/heldout-base20.state \\
        --facts-file training/data/personal_facts_heldout.jsonl --out /tmp/unknown-heldout.json

Reads a facts benchmark run's saved groups (``--methods groups``: ``<out>.state``),
whose taught facts are the file's first ``n``, and asks every benchmark question of
the file: those about taught facts and those about the facts after them, which no
adapter holds. Each question is routed as the product serves it: scope routing
(``training.scope.Scope`` over the taught facts, with the topic embedder), then
group routing (``training.groups.choose_group``), and the chosen adapter's
routing confidence (the mean log-probability of its first ``ROUTING_TOKENS``
greedy tokens, the score group routing compares) is recorded with its reply and
the base model's.

For each floor (below it the product answers "I don't know that about you yet"),
without and with the grounding check (``training.groups.grounded``: the reply's
first sentence must say what the taught facts say), the table gives the taught
questions answered right as served (and, beside it, if the base model answered
instead of that reply) and the share of questions about untaught facts the
adapters still answer: what a floor keeps and what it stops.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from training.adapters import AdapterHost
from training.bench.facts import load_facts
from training.chat import ChatMessage, generate_batch_scored, with_system_prompt
from training.groups import ROUTING_TOKENS, choose_group, grounded
from training.model import load_model, prepare_base_model
from training.quiz import contains_answer
from training.scope import Scope, TopicEmbedder

FLOORS = (None, -2.0, -1.5, -1.25, -1.0, -0.75, -0.5, -0.35, -0.25)
REPLY_TOKENS = 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("state", type=Path, help="a groups run's <out>.state folder")
    parser.add_argument("--facts-file", type=Path, required=True)
    parser.add_argument("--model", default=None, help="model folder or GGUF (default: the bundled SmolLM2)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    root = args.state / "groups"
    taught_n = json.loads((root / "groups.json").read_text())["n"]
    groups: dict[int, dict] = {}
    for folder in sorted(p for p in root.glob("g*") if p.is_dir()):
        state = json.loads((folder / "state.json").read_text())
        if state.get("adapter"):
            texts = [f["text"] for f in state["known"]]
            groups[int(folder.name[1:])] = {"path": folder / state["adapter"], "facts": texts}
    facts = load_facts(args.facts_file)
    host = AdapterHost(load_model(prepare_base_model(args.model, args.cache_dir / "models")))
    for g, part in groups.items():
        host.load(f"g{g}", part["path"])
    taught_texts = [f.text for f in facts[:taught_n]]
    topics = TopicEmbedder.of_host(host)
    scope = Scope(taught_texts, topics.nearer_to_facts)

    def scored(questions: list[str], adapter: str | None, tokens: int) -> list[tuple[str, float]]:
        prompts = [with_system_prompt([ChatMessage("user", q)]) for q in questions]
        with host.using(adapter):
            return generate_batch_scored(host.peft, host.tokenizer, prompts, tokens, ROUTING_TOKENS)

    rows = []
    for i, fact in enumerate(facts):
        for question, answers in fact.questions:
            rows.append({"fact": i, "taught": i < taught_n, "question": question, "answers": list(answers)})
    parts = {g: part["facts"] for g, part in groups.items()}
    for row in rows:
        row["scope"] = scope.message(row["question"])

        def confidence(candidates, q=row["question"]):
            return {g: scored([q], f"g{g}", ROUTING_TOKENS)[0][1] for g in candidates}

        # One candidate (one group, or words that point at one) runs no adapter.
        row["group"] = choose_group(row["question"], parts, confidence)
    questions = [r["question"] for r in rows]
    base = scored(questions, None, REPLY_TOKENS)
    for row, (reply, score) in zip(rows, base, strict=True):
        row["base_reply"], row["base_confidence"] = reply, round(score, 3)
        row["base_right"] = contains_answer(reply, row["answers"])
    for g in groups:
        mine = [r for r in rows if r["group"] == g]
        replies = scored([r["question"] for r in mine], f"g{g}", REPLY_TOKENS)
        for row, (reply, score) in zip(mine, replies, strict=True):
            row["reply"], row["confidence"] = reply, round(score, 3)
            row["right"] = contains_answer(reply, row["answers"])
            row["grounded"] = grounded(reply, row["question"], taught_texts)

    table = []
    for floor, grounding in [(f, g) for g in (False, True) for f in FLOORS]:
        served = [
            (r, r["scope"] and (floor is None or r["confidence"] >= floor) and (r["grounded"] or not grounding))
            for r in rows
        ]  # (row, answered by an adapter)
        taught = [(r, by_adapter) for r, by_adapter in served if r["taught"]]
        # Below the floor the product says it does not know (app.chat.service.UNKNOWN_REPLY);
        # "base" is what the base model answering instead would score.
        right = [r["right"] if by_adapter else (not r["scope"] and r["base_right"]) for r, by_adapter in taught]
        right_base = [r["right"] if by_adapter else r["base_right"] for r, by_adapter in taught]
        untaught = [by_adapter for r, by_adapter in served if not r["taught"]]
        table.append(
            {
                "floor": floor,
                "grounding": grounding,
                "taught_right": round(sum(right) / max(1, len(right)), 3),
                "taught_right_base_answers": round(sum(right_base) / max(1, len(right_base)), 3),
                "untaught_to_adapters": round(sum(untaught) / max(1, len(untaught)), 3),
            }
        )
    print(f"{taught_n} taught facts in {len(groups)} group(s); {len(rows)} questions")
    print(f"{'floor':>7} {'grounding':>9} {'taught right':>13} {'(base answers)':>15} {'untaught to adapters':>21}")
    for t in table:
        row = f"{t['taught_right']:>13.3f} {t['taught_right_base_answers']:>15.3f} {t['untaught_to_adapters']:>21.3f}"
        print(f"{str(t['floor']):>7} {'on' if t['grounding'] else 'off':>9} {row}")
    for r in rows:
        mark = ("T" if r["taught"] else "U") + ("1" if r["right"] else "0") + ("" if r["grounded"] else " ungrounded")
        reply = r["reply"][:70]
        print(f"{mark} scope={int(r['scope'])} g{r['group']} {r['confidence']:+.2f} {r['question']} -> {reply!r}")
    if args.out:
        out = {"taught": taught_n, "groups": len(groups), "floors": table, "rows": rows}
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
