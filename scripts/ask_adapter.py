"""Diagnose what an adapter version answers: each benchmark question, and any other.

    .venv/bin/python scripts/ask_adapter.py docs/bench-facts-n100.state/memory/adapter-29 --n 29 \\
        --ask "Where do I live?" --ask "What is my favorite color?"

Asks the first ``--n`` facts' benchmark questions (``--facts-file``, default the
bundled personal facts) without context, greedy, as the facts benchmark grades
them, and prints 1/0, the question and the reply; then each ``--ask`` question.
Comparing a fact's benchmark question with the wording it was trained on tells a
lost fact from a rewording the adapter does not generalise to (docs/BENCHMARKS.md,
"What the misses are").

``--forget-check FACT`` (repeatable) asks what the gate asks of a removed fact,
the usual quiz and the wide one an unlearnt fact gets (``training.quiz.forget_quiz``),
of the adapter and of the base model, and prints each score and the probes recalled:

    .venv/bin/python scripts/ask_adapter.py .cache/bench-facts/heldout-unlearn-n20-seed0/groups/g0/v11 \
        --n 0 --forget-check "My husband's name is Raj."
"""

from __future__ import annotations

import argparse
from pathlib import Path

from training.adapters import AdapterHost
from training.bench.facts import DEFAULT_FACTS, load_facts
from training.learn import quiz_facts
from training.model import load_model, prepare_base_model
from training.quiz import ask_and_grade, fact_quiz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapter", type=Path, help="an adapter version folder (adapter_model.safetensors)")
    parser.add_argument("--facts-file", type=Path, default=DEFAULT_FACTS)
    parser.add_argument("--n", type=int, default=10, help="how many of the file's facts to ask about")
    parser.add_argument("--ask", action="append", default=[], help="another question (repeatable)")
    parser.add_argument(
        "--forget-check", action="append", default=[], help="a removed fact: the gate's quizzes of it (repeatable)"
    )
    parser.add_argument("--model", default=None, help="model folder or GGUF (default: the bundled SmolLM2)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    args = parser.parse_args()
    if not (args.adapter / "adapter_model.safetensors").is_file():
        parser.error(f"{args.adapter} holds no adapter_model.safetensors")

    host = AdapterHost(load_model(prepare_base_model(args.model, args.cache_dir / "models")))
    questions = [q for fact in load_facts(args.facts_file)[: args.n] for q in fact.questions]
    questions += [(q, ("",)) for q in args.ask]  # no expected answer: printed with "?", read the reply
    host.load("asked", args.adapter)
    with host.using("asked"):
        graded = ask_and_grade(host.peft, host.tokenizer, questions, max_new_tokens=40) if questions else []
    for item in graded:
        mark = "?" if item.question in args.ask else int(item.correct)
        print(f"{mark} {item.question} -> {item.reply.strip()}")
    if args.forget_check:
        # The wide quiz starts with the usual one: asked once, scored both ways.
        facts, wide = args.forget_check, [True] * len(args.forget_check)
        with host.using("asked"):
            adapter = quiz_facts(host.peft, host.tokenizer, facts, wide=wide)
        with host.using(None):
            base = quiz_facts(host.peft, host.tokenizer, facts, wide=wide)
        for i, fact in enumerate(facts):
            usual = len(fact_quiz(fact))
            for label, quizzes in (("adapter", adapter), ("base model", base)):
                for kind, quiz in (("usual", quizzes[i][:usual]), ("wide", quizzes[i])):
                    hits = [f"{r['question']} -> {r['answer'].strip()}" for r in quiz if r["recalled"]]
                    score = f"{sum(r['recalled'] for r in quiz)}/{len(quiz)}"
                    print(f"{fact} | {label}, {kind} quiz: {score}", *hits, sep="\n  ")


if __name__ == "__main__":
    main()
