"""What a memory adapter answers to the benchmark questions it misses.

    .venv/bin/python scripts/fact_misses.py --state docs/bench-facts-n100-selfqa.state/memory \
        --out docs/fact-misses-n100.json

For the adapter a ``training.bench facts`` run left in its state folder, asks every
taught fact's benchmark questions (no context, as the benchmark does), and for
each miss prints the reply and the other taught facts whose answer it contains:
the fact that took the question over. Also compares the benchmark's recall with
the self-quiz recall the state recorded (what the gate and weakest-first
rehearsal see). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from training.adapters import AdapterHost
from training.bench.facts import DEFAULT_FACTS, load_facts
from training.model import load_model, prepare_base_model
from training.quiz import ask_and_grade, contains_answer


def holders(reply: str, answers: dict[int, list[str]], own: int) -> list[int]:
    """The other facts whose answer ``reply`` names, graded as the benchmark grades."""
    return [index for index, values in answers.items() if index != own and contains_answer(reply, values)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--state", type=Path, required=True, help="a bench state folder (state.json + adapter)")
    parser.add_argument("--facts-file", type=Path, default=DEFAULT_FACTS)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    state = json.loads((args.state / "state.json").read_text())
    facts = load_facts(args.facts_file)[: state["n"]]
    newest = facts[-1].index
    host = AdapterHost(load_model(prepare_base_model(None, args.cache_dir / "models")))
    host.load("probe", args.state / state["adapter"])
    asked = [(fact.index, question) for fact in facts for question in fact.questions]
    with host.using("probe"):
        graded = ask_and_grade(host.peft, host.tokenizer, [q for _, q in asked], max_new_tokens=40)
    answers = {fact.index: [a for _, values in fact.questions for a in values] for fact in facts}
    texts = {fact.index: fact.text for fact in facts}

    misses, right = [], {}
    for (index, (question, _)), result in zip(asked, graded, strict=True):
        right.setdefault(index, []).append(result.correct)
        if not result.correct:
            taken_by = holders(result.reply, answers, index)
            misses.append(
                {
                    "fact": index,
                    "text": texts[index],
                    "question": question,
                    "reply": result.reply,
                    "self_quiz_recall": state["recall"].get(str(index)),
                    "answered_with": [texts[i] for i in taken_by],
                    "answered_with_newest": newest in taken_by,
                }
            )
    bench = {i: sum(v) / len(v) for i, v in right.items()}
    quizzed = [i for i in bench if str(i) in state["recall"]]
    summary = {
        "facts": len(facts),
        "questions": len(asked),
        "missed": len(misses),
        "answered_with_another_fact": sum(1 for m in misses if m["answered_with"]),
        "answered_with_the_newest_fact": sum(1 for m in misses if m["answered_with_newest"]),
        "benchmark_recall": round(statistics.mean(bench[i] for i in quizzed), 4),
        "self_quiz_recall": round(statistics.mean(state["recall"][str(i)] for i in quizzed), 4),
        "missed_but_self_quiz_full": sum(1 for i in quizzed if bench[i] < 0.5 and state["recall"][str(i)] >= 1.0),
    }
    for m in misses:
        other = "; ".join(m["answered_with"]) or "-"
        print(f"{m['fact']:>4}  {m['question'][:44]:44}  {m['reply'][:60]!r:64}  {other[:50]}")
    width = max(len(k) for k in summary)
    for key, value in summary.items():
        print(f"{key:{width}}  {value}")
    args.out.write_text(json.dumps({"state": str(args.state), "summary": summary, "misses": misses}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
