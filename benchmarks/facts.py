"""Memory that does not forget: teach N personal facts one at a time, measure what survives.

    python -m benchmarks.facts --n 10 --out docs/bench-facts.json --plot docs/forgetting-curve.png
    python -m benchmarks.facts --facts-file my_facts.jsonl --n 30 --forget 5

Facts come as JSON lines ``{"fact": "...", "questions": [{"q": "...", "answers": [...]}]}``
(default: ``training/data/personal_facts.jsonl``); the questions are phrased
differently from the fact and are never trained on. Each fact is taught in its
own consolidation, exactly as the worker does it (``learn_facts``), and after
each step the run reports recall of the fact just taught, of the first 10 facts,
of all facts so far, locality (share of held-out general prompts whose greedy
answer is unchanged from the base model's) and the consolidation's seconds.

Methods compared in the same run:
- ``memory``: the product. Warm start from the live version, sampled rehearsal of
  earlier facts, replay of the base model's answers with a KL term, and the gate
  (a refused version is retried once, warm-started like any run, with the earlier
  facts it lost rehearsed and quizzed first, as the worker does; if that is
  refused too the previous version stays live and the fact counts as not learnt).
- ``sequential``: the paper's setting. Each edit is trained on top of the last
  with neither rehearsal nor replay, and nothing is refused.

The forget experiment (``--forget M``, on the ``memory`` run's final state) forgets
M facts in one consolidation, as the worker does (a rebuild of each group that held one), and reports
their recall and the others', before and after.
Every step is appended to ``<out>.steps.jsonl`` as it finishes; ``--report-only``
rebuilds the JSON, the table and the plot from that file (for example after an
interrupted run, or from methods run separately with ``--methods``).

``--resume`` continues an interrupted run: after every step each method's state
(its live adapter, the examples it rehearses, the recall the gate compares
against, its version and refusal counts) is written to ``<out>.state/<method>/``,
and a resumed run starts from there with the same seeds, so a 100-fact run can
be spread over several sittings and gives what one sitting would.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from training.adapters import AdapterHost
from training.embeddings import SentenceEmbedder
from training.lora import TrainConfig
from training.memory.fact_sets import DEFAULT_FACTS, BenchFact, load_facts
from training.memory.gate import GateThresholds, decide, recall_after_refusal
from training.memory.learn import (
    FACT_KL_WEIGHT,
    QA,
    FactToLearn,
    LearnRequest,
    LearnResult,
    learn_facts,
)
from training.memory.plan import DEFAULT_GROUP_SIZE
from training.memory.quiz import ask_and_grade, ask_many, contains_answer
from training.model import load_model, prepare_base_model
from training.replay import LOCALITY_PROMPTS
from training.routing.router import Router, product_router, served_locality
from training.seal.self_edit import FACT_FAMILIES

log = logging.getLogger(__name__)

METHODS = ("memory", "sequential", "groups")


class Learner:
    """One method's chain of adapter versions for one simulated user."""

    def __init__(self, host: AdapterHost, method: str, work: Path, args, name: str | None = None) -> None:
        self.host, self.method, self.work, self.args = host, method, work, args
        self.name = name or method  # adapter and folder names (a group's learner: "g3")
        self.live: Path | None = None
        self.known: dict[int, FactToLearn] = {}  # fact index -> what later versions rehearse
        self.recall: dict[int, float] = {}  # latest measured self-quiz recall, for the gate
        self.versions = 0
        self.refused = 0

    @property
    def _family(self) -> str:
        return getattr(self.args, "family", None) or LearnRequest.self_edit_family

    def _request(
        self,
        new,
        removed=(),
        seed_offset: int = 0,
        rebuild: bool = False,
        recall: dict[int, float] | None = None,
    ) -> LearnRequest:
        self.versions += 1
        memory = self.method == "memory"
        recall = self.recall if recall is None else recall
        return LearnRequest(
            adapter_name=f"{self.name}-v{self.versions}",
            new_facts=list(new),
            # The paper's setting neither rehearses nor checks earlier facts.
            rehearsal=[replace(f, recall=recall.get(i)) for i, f in self.known.items()] if memory else [],
            removed=list(removed),
            rehearse=memory,
            replay_share=LearnRequest.replay_share if memory else 0.0,  # the product's default
            output_dir=self.work / self.name / f"v{self.versions}",
            replay_cache=self.args.replay_cache,
            init_adapter=None if rebuild else self.live,
            train=TrainConfig(
                learning_rate=self.args.lr,
                max_steps=self.args.steps,
                seed=self.args.seed * 1000 + self.versions + seed_offset,
                kl_weight=getattr(self.args, "kl_weight", FACT_KL_WEIGHT) if memory else 0.0,
            ),
            k=self.args.k,
            max_rehearsal_facts=self.args.max_rehearsal,
            rehearsal_examples_per_fact=self.args.rehearsal_examples,
            rehearsal_weight=self.args.rehearsal_weight,
            self_edit_family=self._family,
            rebuild_epochs=getattr(self.args, "rebuild_epochs", LearnRequest.rebuild_epochs),
            drop_attention=getattr(self.args, "drop_attention", LearnRequest.drop_attention),
            shrink_scales=getattr(self.args, "shrink_scales", LearnRequest.shrink_scales),
        )

    def _accept(self, result: LearnResult, thresholds: GateThresholds) -> bool:
        if self.method != "memory":
            return True
        previous = {i: self.recall[i] for i in result.kept_recall if i in self.recall}
        decision = decide(
            previous, result.kept_recall, result.locality, result.removed_recall, thresholds, result.removed_base_recall
        )
        if not decision.accepted:
            log.warning(
                "%s: refused: %s (recall before %s, after %s)",
                result.output_dir.name,
                decision.reason,
                {i: round(r, 2) for i, r in previous.items()},
                {i: round(r, 2) for i, r in result.kept_recall.items()},
            )
            self.refused += 1
        return decision.accepted

    def teach(self, fact: BenchFact, thresholds: GateThresholds) -> tuple[float, float, tuple[str, ...]]:
        """Learn one fact; returns (seconds, locality of the live version, the general prompts it changed)."""
        started = time.perf_counter()
        item = FactToLearn(fact.index, fact.text)
        refused: list[dict[int, float]] = []
        for attempt in range(2 if self.method == "memory" else 1):
            # As the worker does: a retry after a refusal is warm-started too, with the
            # facts the refused version lost rehearsed and quizzed first.
            planned = recall_after_refusal(self.recall, refused)
            request = self._request([item], seed_offset=attempt * 7919, recall=planned)
            result = learn_facts(self.host, request)
            refused.append(result.kept_recall)
            if self._accept(result, thresholds):
                self.live = result.output_dir
                outcome = result.facts[0]
                self.known[fact.index] = replace(item, examples=outcome.examples)
                self.recall.update(result.kept_recall)
                self.recall[fact.index] = outcome.recall
                return time.perf_counter() - started, result.locality, result.locality_changed
        return time.perf_counter() - started, float("nan"), ()

    def save_state(self, folder: Path, n: int) -> None:
        """Write what a resumed run needs after ``n`` facts; the previous state stays valid until the end."""
        folder.mkdir(parents=True, exist_ok=True)
        adapter = None
        if self.live is not None:
            adapter = f"adapter-{n}"
            shutil.rmtree(folder / adapter, ignore_errors=True)
            shutil.copytree(self.live, folder / adapter)
            if self.live.parent == folder:
                # Still the adapter a resumed run started from (every try since was
                # refused): it is about to be replaced by its copy, so serve that.
                self.live = folder / adapter
        state = {
            "n": n,
            "family": self._family,
            "versions": self.versions,
            "refused": self.refused,
            "adapter": adapter,
            "recall": {str(i): r for i, r in self.recall.items()},
            "known": [
                {"index": i, "text": f.text, "examples": [[e.question, e.answer] for e in f.examples]}
                for i, f in self.known.items()
            ],
        }
        tmp = folder / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        tmp.replace(folder / "state.json")  # the switch to the new state is atomic
        for old in folder.glob("adapter-*"):
            if old.name != adapter:
                shutil.rmtree(old)

    def restore(self, folder: Path) -> int:
        """Load a state written by ``save_state``; returns how many facts it had taught (0: none)."""
        path = folder / "state.json"
        if not path.is_file():
            return 0
        state = json.loads(path.read_text())
        # States from before the setting existed were written with the rewrite family.
        if state.get("family", "rewrite") != self._family:
            raise ValueError(f"{path} was written with --family {state.get('family', 'rewrite')}: resume with it")
        self.versions, self.refused = state["versions"], state["refused"]
        self.live = folder / state["adapter"] if state["adapter"] else None
        self.recall = {int(i): r for i, r in state["recall"].items()}
        self.known = {
            k["index"]: FactToLearn(k["index"], k["text"], tuple(QA(q, a) for q, a in k["examples"]))
            for k in state["known"]
        }
        return state["n"]

    def recall_of(self, facts: list[BenchFact]) -> dict[int, float]:
        """Each fact's share of benchmark questions the live version answers."""
        return recall_of(self.host, self.live, facts)

    def forget(self, facts: list[BenchFact], thresholds: GateThresholds) -> dict:
        """Take ``facts`` out of the live version as the worker does: one run that
        rebuilds the adapter from scratch on the facts it keeps, then the gate."""
        removed = [self.known.pop(f.index) for f in facts]
        started = time.perf_counter()
        result = learn_facts(self.host, self._request([], removed=removed, rebuild=True))
        accepted = self._accept(result, thresholds)
        if accepted:
            self.live = result.output_dir
            self.recall.update(result.kept_recall)
        return {
            "accepted": accepted,
            "rebuilt": True,
            "self_quiz_removed_recall": result.removed_recall,
            "self_quiz_removed_base_recall": result.removed_base_recall,
            "self_quiz_kept_recall": result.kept_recall,
            "locality": result.locality,
            "seconds": round(time.perf_counter() - started, 1),
        }


def recall_of(host: AdapterHost, adapter: Path | None, facts: list[BenchFact]) -> dict[int, float]:
    """Share of each fact's benchmark questions answered (no context) by ``adapter``."""
    if not facts:
        return {}
    if adapter is None:
        with host.using(None):
            return _grade(host, facts)
    host.load("bench-probe", adapter)
    try:
        with host.using("bench-probe"):
            return _grade(host, facts)
    finally:
        host.unload("bench-probe")


def in_context_recall(host: AdapterHost, facts: list[BenchFact]) -> dict[int, float]:
    """Share of each fact's benchmark questions the base model answers with the fact
    in its prompt (``ask_and_grade``'s form): what the model makes of the fact when it
    reads it, the reference a version answering from its weights is read against
    (not a bound: training can teach a wording the model does not infer in context)."""
    asked = [(f"{fact.text}\n\nQuestion: {q}", answers) for fact in facts for q, answers in fact.questions]
    with host.using(None):
        replies = ask_many(host.peft, host.tokenizer, [p for p, _ in asked], max_new_tokens=40)
    return _per_fact(facts, [contains_answer(r, answers) for r, (_, answers) in zip(replies, asked, strict=True)])


def in_context_summary(host: AdapterHost, facts: list[BenchFact]) -> dict:
    """``in_context_recall`` of ``facts`` as a summary records it."""
    in_context = in_context_recall(host, facts)
    return {
        "in_context_recall": _mean(in_context.values()),
        "in_context_first10": _mean(in_context[f.index] for f in facts[:10]),
        "in_context_by_fact": {str(k): v for k, v in in_context.items()},
    }


def _grade(host: AdapterHost, facts: list[BenchFact]) -> dict[int, float]:
    # Every fact's questions in one batched call, then split back per fact.
    graded = ask_and_grade(host.peft, host.tokenizer, [q for f in facts for q in f.questions], max_new_tokens=40)
    return _per_fact(facts, [g.correct for g in graded])


def _per_fact(facts: list[BenchFact], correct: list[bool]) -> dict[int, float]:
    """Each fact's share of ``correct``, which holds every fact's questions in order."""
    flags, out = iter(correct), {}
    for fact in facts:
        mine = [next(flags) for _ in fact.questions]
        out[fact.index] = sum(mine) / len(mine)
    return out


def with_routing(step: dict, facts: list[BenchFact], router: Router) -> dict:
    """Add what a user is *served* at this step, with the router in front of the adapter.

    A question is answered by the adapter only when the router sends it there (else
    the base model answers, or "I don't know", neither of which recalls these
    facts); a general prompt keeps its answer unless routed to an adapter that
    changed it or answered by the router itself ("I don't know", the fact list).
    """
    taught = facts[: step["n"]]
    texts, groups = [f.text for f in taught], [0] * len(taught)

    def outcome(message: str) -> str:
        return router.route(message, texts, groups).outcome

    def reaches(message: str) -> bool:
        return outcome(message) == "adapter"

    routed = {f.index: all(reaches(q) for q, _ in f.questions) for f in taught}
    recall = {int(k): v for k, v in step["recall_by_fact"].items()}
    served = {i: recall[i] if routed[i] else 0.0 for i in recall}
    out = dict(step)
    out["routed_questions"] = _mean(float(v) for v in routed.values())
    out["served_recall_all"] = _mean(served.values())
    out["served_recall_first10"] = _mean(served[f.index] for f in taught[:10])
    if step.get("locality") is not None and "locality_changed" in step:
        n_prompts = step.get("locality_n", 40)  # steps recorded before the set grew to 50 had 40
        prompts = LOCALITY_PROMPTS[:n_prompts]  # the general prompts come first
        out["served_locality"] = round(served_locality(prompts, step["locality_changed"], outcome), 4)
    return out


def _mean(values) -> float | None:
    values = list(values)
    return round(sum(values) / len(values), 4) if values else None


def new_learner(host: AdapterHost, method: str, args, router: Router | None = None):
    if method == "groups":
        from benchmarks.fact_groups import GroupLearner  # it builds on Learner, defined here

        return GroupLearner(host, args.work, args, router)
    return Learner(host, method, args.work, args)


def run_method(
    host, method: str, facts: list[BenchFact], args, thresholds, done: dict, steps: list[dict]
) -> tuple[list[dict], Learner]:
    """Teach ``facts`` in order; ``steps`` holds those a resumed run already recorded."""
    router = product_router(SentenceEmbedder())
    learner = new_learner(host, method, args, router)
    state = args.out.with_suffix(".state") / method
    if learner.restore(state) != len(steps):
        raise SystemExit(f"{state}: its state does not match the {len(steps)} recorded step(s) of {method}")
    steps = list(steps)
    for n, fact in enumerate(facts, 1):
        if n <= len(steps):
            continue
        seconds, locality, changed = learner.teach(fact, thresholds)
        recalled = learner.recall_of(facts[:n])
        step = {
            "method": method,
            "n": n,
            "fact": fact.text,
            "recall_new": recalled[fact.index],
            "recall_first10": _mean(recalled[f.index] for f in facts[: min(10, n)]),
            "recall_all": _mean(recalled.values()),
            "locality": None if locality != locality else round(locality, 4),
            "locality_changed": list(changed),
            "locality_n": len(LOCALITY_PROMPTS),
            "seconds": round(seconds, 1),
            "refused_so_far": learner.refused,
            "recall_by_fact": {str(k): v for k, v in recalled.items()},
        }
        if (unfloored := _unrouted(learner, facts[:n])) is not None:
            step["unrouted"] = {
                "recall_new": unfloored[fact.index],
                "recall_first10": _mean(unfloored[f.index] for f in facts[: min(10, n)]),
                "recall_all": _mean(unfloored.values()),
            }
        step = with_routing(step, facts, router)
        steps.append(step)
        with done["file"].open("a") as fh:
            fh.write(json.dumps(step) + "\n")
        learner.save_state(state, n)
        print(
            f"{method:>10} n={n:3d} new={step['recall_new']:.2f} first10={step['recall_first10']:.2f} "
            f"all={step['recall_all']:.2f} locality={step['locality']} served={step.get('served_locality')} "
            f"{seconds:.0f}s",
            flush=True,
        )
    return steps, learner


def _unrouted(learner: Learner, facts: list[BenchFact]) -> dict[int, float] | None:
    """The groups method's recall with each question asked of its own fact's group
    (what the weights hold, no routing), beside its recall as served; None for one adapter."""
    unrouted = getattr(learner, "adapter_recall", None)
    return unrouted(facts) if unrouted is not None else None


def forget_experiment(host, learner: Learner, facts: list[BenchFact], count: int, thresholds, seed: int) -> dict:
    # Only facts the live version holds can be forgotten (a fact the gate refused
    # twice was never learnt); the others it holds are what must be kept.
    held = [f for f in facts if f.index in learner.known]
    chosen = random.Random(seed).sample(held, min(count, len(held)))
    kept = [f for f in held if f not in chosen]
    before = learner.recall_of(held)
    result = learner.forget(chosen, thresholds)
    forgotten = learner.recall_of(chosen)
    others = learner.recall_of(kept)
    unfloored = _unrouted(learner, held)
    # What the base model, which never learnt them, answers of the forgotten facts'
    # questions from its own knowledge ("Which antibiotic should I stay away from?" ->
    # penicillin, on the held-out set):
    # a forget cannot go below it, as the gate's own baseline (removed_base_recall).
    base = recall_of(host, None, chosen)
    return {
        **result,
        "n_facts": len(facts),
        "n_held": len(held),
        "of_method": learner.method,
        "forgotten": [f.text for f in chosen],
        "forgotten_recall": _mean(forgotten.values()),
        "kept_recall": _mean(others.values()),
        # The same facts just before the forget: what "kept" is measured against.
        "forgotten_recall_before": _mean(before[f.index] for f in chosen),
        "forgotten_base_recall": _mean(base.values()),
        # Per fact, to trace a forgotten fact still answered, or a kept one lost.
        "forgotten_by_fact": {f.text: forgotten[f.index] for f in chosen},
        "kept_lost": [f.text for f in kept if before[f.index] > others[f.index]],
        "kept_recall_before": _mean(before[f.index] for f in kept),
        **(
            {
                "forgotten_recall_unrouted": _mean(unfloored[f.index] for f in chosen),
                "kept_recall_unrouted": _mean(unfloored[f.index] for f in kept),
            }
            if unfloored is not None
            else {}
        ),
    }


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, steps in results["methods"].items():
        ns = [s["n"] for s in steps]
        style = "--" if method == "sequential" else "-"
        axes[0].plot(ns, [s["recall_first10"] for s in steps], style, marker="o", label=f"{method}: first 10 facts")
        axes[0].plot(ns, [s["recall_all"] for s in steps], style, marker="x", label=f"{method}: all facts so far")
        axes[1].plot(ns, [s["locality"] for s in steps], style, marker="o", label=f"{method}: adapter")
        if method != "sequential" and any(s.get("served_locality") is not None for s in steps):
            served = [s.get("served_locality") for s in steps]
            axes[1].plot(ns, served, ":", marker="s", label=f"{method}: served (routing)")
    if results.get("in_context_recall") is not None:
        axes[0].axhline(results["in_context_recall"], color="grey", linestyle=":", label="fact in the prompt")
    axes[0].set(xlabel="facts taught", ylabel="recall (held-out questions)", ylim=(-0.02, 1.02))
    axes[1].set(xlabel="facts taught", ylabel="locality (general answers kept)", ylim=(-0.02, 1.02))
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"Forgetting curve ({results['config']['model']}, one fact per consolidation)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.facts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts-file", type=Path, default=DEFAULT_FACTS)
    parser.add_argument("--n", type=int, default=10, help="facts taught one at a time (10, 30, 100)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {METHODS}")
    parser.add_argument("--forget", type=int, default=5, help="facts forgotten at the end (0: skip)")
    parser.add_argument("--k", type=int, default=1, help="self-edit candidates per consolidation")
    parser.add_argument("--steps", type=int, default=40, help="max optimiser steps per consolidation")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--max-rehearsal", type=int, default=24)
    parser.add_argument(
        "--rehearsal-examples",
        type=int,
        default=LearnRequest.rehearsal_examples_per_fact,
        help="stored examples rehearsed per earlier fact",
    )
    parser.add_argument(
        "--rehearsal-weight",
        type=float,
        default=LearnRequest.rehearsal_weight,
        help="earlier facts' example visits, at least this share of the new facts'",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=DEFAULT_GROUP_SIZE,
        help="facts per adapter in the groups method (training.memory.plan)",
    )
    parser.add_argument(
        "--rebuild-epochs",
        type=int,
        default=LearnRequest.rebuild_epochs,
        help="epochs of each kept fact's stored examples when a group is trained from scratch (a forget's rebuild)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--family",
        choices=FACT_FAMILIES,
        default=LearnRequest.self_edit_family,
        help="the self-edit family (the product writes training.memory.learn.SELF_EDIT_FAMILY)",
    )
    parser.add_argument("--model", default=None, help="model folder or GGUF (default: the bundled SmolLM2)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--out", type=Path, default=Path("docs/bench-facts.json"))
    parser.add_argument("--plot", type=Path, default=Path("docs/forgetting-curve.png"))
    parser.add_argument("--min-locality", type=float, default=GateThresholds.min_locality)
    parser.add_argument("--max-recall-drop", type=float, default=GateThresholds.max_recall_drop)
    parser.add_argument(
        "--min-lost-facts",
        type=int,
        default=GateThresholds.min_lost_facts,
        help="a recall drop refuses a version only when it loses at least this many earlier facts (or all of them)",
    )
    parser.add_argument("--report-only", action="store_true", help="summarise <out>.steps.jsonl, train nothing")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.steps.jsonl and <out>.state/")
    args = parser.parse_args(argv)
    if args.report_only:
        return report_only(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    methods = [m for m in args.methods.split(",") if m]
    if unknown := set(methods) - set(METHODS):
        parser.error(f"unknown method(s): {sorted(unknown)}")
    facts = load_facts(args.facts_file)
    if args.n > len(facts):
        parser.error(f"--n {args.n} but {args.facts_file} holds {len(facts)} facts")
    facts = facts[: args.n]
    thresholds = GateThresholds(args.max_recall_drop, args.min_locality, 0.0, args.min_lost_facts)

    folder = prepare_base_model(args.model, args.cache_dir / "models")
    host = AdapterHost(load_model(folder))
    args.replay_cache = args.cache_dir / "replay" / f"{folder.name}.json"
    # Scratch space per output file: two runs side by side never share (or delete) it,
    # even when their outputs have the same name in different folders.
    out_key = hashlib.sha1(str(args.out.resolve()).encode()).hexdigest()[:8]
    args.work = args.cache_dir / "bench-facts" / f"{args.out.stem}-{out_key}-n{args.n}-seed{args.seed}"
    steps_file = args.out.with_suffix(".steps.jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    recorded = recorded_steps(steps_file, args.out.with_suffix(".state")) if args.resume else {}
    shutil.rmtree(args.work, ignore_errors=True)  # scratch: a resumed run starts from the state's own copy
    if not args.resume:
        shutil.rmtree(args.out.with_suffix(".state"), ignore_errors=True)
        steps_file.write_text("")

    started = time.perf_counter()
    base_recall = recall_of(host, None, facts)
    in_context = in_context_summary(host, facts)
    results: dict = {
        "config": {
            "model": folder.name,
            "facts_file": str(args.facts_file),
            "n": args.n,
            "k": args.k,
            "max_steps": args.steps,
            "learning_rate": args.lr,
            "max_rehearsal_facts": args.max_rehearsal,
            "rehearsal_examples": args.rehearsal_examples,
            "rehearsal_weight": args.rehearsal_weight,
            "rebuild_epochs": args.rebuild_epochs,
            "group_size": args.group_size if "groups" in methods else None,
            "routing": "training.routing.router" if "groups" in methods else None,
            "family": args.family,
            "seed": args.seed,
            "gate": vars(thresholds),
        },
        "base_recall": _mean(base_recall.values()),
        # The base model with each fact in its prompt: the reference for recall from weights.
        **in_context,
        "methods": {},
    }
    learners = {}
    for method in methods:
        steps, learners[method] = run_method(
            host, method, facts, args, thresholds, {"file": steps_file}, recorded.get(method, [])
        )
        results["methods"][method] = steps
        results[f"refused_{method}"] = learners[method].refused
    primary = primary_method(results["methods"])
    results["steps"] = results["methods"][primary]
    if args.forget and primary in learners and primary != "sequential" and args.forget < len(facts):
        results["forget"] = forget_experiment(
            host,
            learners[primary],
            facts,
            args.forget,
            thresholds,
            args.seed,
        )
    results["seconds_total"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(results, indent=1))
    plot(results, args.plot)
    print_table(results)
    return 0


def primary_method(methods: dict) -> str:
    """The method ``steps`` and the forget experiment report: the product's own."""
    return next((m for m in ("groups", "memory") if m in methods), next(iter(methods)))


def recorded_steps(steps_file: Path, state: Path) -> dict[str, list[dict]]:
    """The steps a resumed run keeps, per method: those its saved state covers.

    A step written just before an interruption, whose state was not saved, is
    dropped from the file and taught again.
    """
    kept: dict[str, list[dict]] = {}
    lines = steps_file.read_text().splitlines() if steps_file.is_file() else []
    for line in lines:
        if line.strip():
            step = json.loads(line)
            kept.setdefault(step["method"], []).append(step)
    from benchmarks.fact_groups import STATE_FILE as GROUPS_STATE  # it builds on Learner, defined here

    for method, steps in kept.items():
        # The groups method saves its own state file (fact_groups.GroupLearner).
        path = state / method / (GROUPS_STATE if method == "groups" else "state.json")
        saved = json.loads(path.read_text())["n"] if path.is_file() else 0
        kept[method] = [s for s in steps if s["n"] <= saved]
    steps_file.write_text("".join(json.dumps(s) + "\n" for steps in kept.values() for s in steps))
    return kept


def report_only(args) -> int:
    """Summarise the recorded steps (``<out>.steps.jsonl``, else the steps ``<out>``
    already holds); what is *served* is recomputed with the current router (it needs
    no language model). A summary without the in-context reference gets it."""
    steps_file = args.out.with_suffix(".steps.jsonl")
    facts = load_facts(args.facts_file)
    router = product_router(SentenceEmbedder())
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if steps_file.is_file():
        recorded = [json.loads(line) for line in steps_file.read_text().splitlines() if line.strip()]
    else:
        recorded = [step for steps in previous.get("methods", {}).values() for step in steps]
    methods: dict[str, list[dict]] = {}
    for step in recorded:
        methods.setdefault(step["method"], []).append(with_routing(step, facts, router))
    if "in_context_recall" not in previous and methods:
        # A run recorded before the reference was: the base model is greedy and fixed, so it is the same now.
        taught = facts[: max(s["n"] for steps in methods.values() for s in steps)]
        folder = prepare_base_model(args.model, args.cache_dir / "models")
        previous |= in_context_summary(AdapterHost(load_model(folder)), taught)
    results = {
        "config": previous.get("config", {"model": "SmolLM2-135M-Instruct.Q4_1", "n": args.n}),
        "base_recall": previous.get("base_recall"),
        **{k: previous[k] for k in ("in_context_recall", "in_context_first10", "in_context_by_fact") if k in previous},
        "methods": methods,
        "steps": methods[primary_method(methods)],
        "partial": {m: len(v) for m, v in methods.items()},
    }
    results |= {k: v for k, v in previous.items() if k == "forget" or k == "seconds_total" or k.startswith("refused_")}
    args.out.write_text(json.dumps(results, indent=1))
    plot(results, args.plot)
    print_table(results)
    return 0


def print_table(results: dict) -> None:
    if results.get("base_recall") is not None:
        print(f"\nbase model, no training: recall {results['base_recall']:.2f}")
    if results.get("in_context_recall") is not None:
        print(
            f"base model with the fact in its prompt: recall {results['in_context_recall']:.2f}, "
            f"first 10 {results['in_context_first10']:.2f}"
        )
    print(
        f"{'method':>10} {'n':>4} {'new':>5} {'first10':>8} {'all':>5} {'locality':>9} "
        f"{'served all':>11} {'served loc':>11} {'seconds':>8}"
    )
    for method, steps in results["methods"].items():
        for s in steps:
            loc = "—" if s["locality"] is None else f"{s['locality']:.2f}"
            served_loc = "—" if s.get("served_locality") is None else f"{s['served_locality']:.2f}"
            print(
                f"{method:>10} {s['n']:>4} {s['recall_new']:>5.2f} {s['recall_first10']:>8.2f} "
                f"{s['recall_all']:>5.2f} {loc:>9} {s['served_recall_all']:>11.2f} {served_loc:>11} "
                f"{s['seconds']:>8.1f}"
            )
    if forget := results.get("forget"):
        print(
            f"forget {len(forget['forgotten'])} of {forget['n_facts']}: forgotten recall "
            f"{forget['forgotten_recall']:.2f} (before {forget.get('forgotten_recall_before', float('nan')):.2f}, "
            f"base model {forget.get('forgotten_base_recall', float('nan')):.2f}), "
            f"kept recall {forget['kept_recall']:.2f} (before {forget.get('kept_recall_before', float('nan')):.2f}) "
            f"(accepted by the gate: {forget['accepted']}, "
            f"{forget['seconds']} s)"
        )
        if "forgotten_recall_unrouted" in forget:
            print(
                "  each question asked of its own fact's group: forgotten recall "
                f"{forget['forgotten_recall_unrouted']:.2f}, kept recall {forget['kept_recall_unrouted']:.2f}"
            )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
