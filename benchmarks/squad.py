"""Knowledge incorporation on SQuAD v1.1, the paper's protocol, on the configured base model.

    python -m benchmarks.squad --n 50 --seed 0 --k 4 --out docs/bench-squad.json
    python -m benchmarks.squad --passages-file my_passages.json --k 4

For each passage, accuracy on its questions *without the passage in context* for:
``base`` (no training), ``passage`` (LoRA on the passage alone), ``self_edit:<family>``
(LoRA on the passage plus one sampled self-edit of each prompt family),
``best_of_k`` (K candidates with self-chosen settings, the one with the highest
reward on the gold questions kept: the issue's definition, an oracle selection),
``best_of_k_cloze`` (the same K candidates, chosen by a cloze quiz built from the
passage, so the gold questions stay unseen: the deployable variant), and
``policy:<version>`` (LoRA on the passage plus one self-edit written by a trained
self-edit policy, ``--policy DIR``, same prompt family, seed and settings as the
``self_edit:<family>`` row, so the writer is the only difference), and
``in_context`` (the passage in the prompt; the ceiling). Accuracy: a normalised
gold answer contained in the first 64 generated tokens; also SQuAD F1.

Per-passage results are stored in ``<out>.passages.jsonl`` as they finish, so an
interrupted run resumes where it stopped; adding ``--policy`` to a finished run
computes only the new rows, and a larger ``--k`` (more ``--candidate-families``)
adds only the new candidates, then chooses again among all of them.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import sys
import time
from pathlib import Path

import torch

from benchmarks.stats import bootstrap_gain_and_ratio, mean_interval, wilson_interval
from training.adapters import AdapterHost
from training.lora import TrainConfig
from training.memory.quiz import ask_and_grade, cloze_probes
from training.model import load_model, prepare_base_model
from training.policy.squad import Passage, ensure_squad, load_passages, sample_passages
from training.replay import load_or_build
from training.seal.candidates import DEFAULT_CHOICE, GRID, assign, propose_candidates
from training.seal.inner_loop import applied, mix_replay, text_examples
from training.seal.policy import PolicyRef, activate
from training.seal.self_edit import FAMILIES, generate_passage_self_edit

log = logging.getLogger(__name__)


def _train_config(choice, seed: int, max_steps: int) -> TrainConfig:
    return TrainConfig(learning_rate=choice.learning_rate, epochs=choice.epochs, max_steps=max_steps, seed=seed)


def _score(graded) -> dict:
    return {
        "correct": [g.correct for g in graded],
        "f1": [round(g.f1, 4) for g in graded],
        "replies": [g.reply for g in graded],
    }


def _train_and_grade(host, name: str, texts: list[str], choice, seed: int, questions, replay, args, cloze=None) -> dict:
    examples = mix_replay(text_examples(texts), replay, args.replay_ratio, seed)
    with applied(host, name, examples, _train_config(choice, seed, args.max_steps)) as losses:
        scored = _score(ask_and_grade(host.peft, host.tokenizer, questions))
        scored["loss_first_last"] = [round(losses[0], 4), round(losses[-1], 4)]
        if cloze is not None:
            scored["cloze"] = [g.correct for g in ask_and_grade(host.peft, host.tokenizer, cloze)]
    return scored


def _source(passage: Passage) -> str:
    return f"{passage.title}\n{passage.context}"


def _cloze(passage: Passage, args) -> list:
    return cloze_probes(passage.context, n=4, seed=args.seed)


def _questions(passage: Passage) -> list:
    return [(q.question, q.answers) for q in passage.questions]


def policy_method(policy: PolicyRef) -> str:
    return f"policy:{policy.path.name}"


def policy_row(host: AdapterHost, passage: Passage, policy: PolicyRef, replay, args) -> dict:
    """The ``self_edit:<family>`` protocol with the self-edit written by ``policy``."""
    source = _source(passage)
    with host.using(activate(host, policy)):
        edit = generate_passage_self_edit(host.peft, host.tokenizer, source, args.policy_family, seed=args.seed)
    texts = [source, *edit.lines]
    name = f"pol-{policy.path.name}"
    scored = _train_and_grade(host, name, texts, DEFAULT_CHOICE, args.seed, _questions(passage), replay, args)
    scored["self_edit"] = {"raw": edit.raw, "lines": list(edit.lines), "policy": policy.name}
    return scored


def score_candidates(host: AdapterHost, source: str, questions, cloze, replay, args, start: int) -> list[dict]:
    """Candidates ``start`` to ``args.k - 1``: each sampled, applied by LoRA and graded (gold and cloze)."""
    with host.using(None):
        candidates = propose_candidates(
            host.peft,
            host.tokenizer,
            source,
            args.k,
            families=args.candidate_families,
            grid=GRID,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            start=start,
        )
    scored_candidates = []
    for candidate in candidates:
        scored = _train_and_grade(
            host,
            f"cand-{candidate.index}",
            candidate.training_texts(source),
            candidate.choice,
            candidate.seed,
            questions,
            replay,
            args,
            cloze,
        )
        scored.update(
            family=candidate.self_edit.family,
            settings=candidate.choice.to_dict(),
            lines=list(candidate.self_edit.lines),
        )
        scored_candidates.append(scored)
    return scored_candidates


def _reward_gold(c: dict) -> tuple[float, float]:
    return (sum(c["correct"]) / len(c["correct"]), sum(c["f1"]) / len(c["f1"]))


def _reward_cloze(c: dict) -> float:
    return sum(c["cloze"]) / len(c["cloze"]) if c["cloze"] else 0.0


def choose(scored_candidates: list[dict]) -> dict[str, dict]:
    """The ``best_of_k`` (gold questions) and ``best_of_k_cloze`` rows; ties go to the lower index."""
    best_gold = max(range(len(scored_candidates)), key=lambda i: _reward_gold(scored_candidates[i]))
    best_cloze = max(range(len(scored_candidates)), key=lambda i: _reward_cloze(scored_candidates[i]))
    return {
        "best_of_k": {**scored_candidates[best_gold], "chosen": best_gold},
        "best_of_k_cloze": {**scored_candidates[best_cloze], "chosen": best_cloze},
    }


def extend_candidates(host: AdapterHost, passage: Passage, record: dict, replay, args) -> bool:
    """Add candidates to a finished record up to ``args.k`` and choose again; False when none were missing.

    Candidate ``i`` depends only on ``i`` and the seed, so this gives what a run with
    the larger K would (up to float rounding); a record whose candidates were drawn
    with other families or settings is refused rather than mixed.
    """
    have = record["candidates"]
    if len(have) >= args.k:
        return False
    for index, candidate in enumerate(have):
        family, choice = assign(index, args.candidate_families, GRID)
        if (candidate["family"], candidate["settings"]) != (family, choice.to_dict()):
            raise SystemExit(
                f"{passage.passage_id}: candidate {index} was {candidate['family']} {candidate['settings']}, "
                f"but --candidate-families gives {family} {choice.to_dict()}; use another --out"
            )
    started = time.perf_counter()
    source = _source(passage)
    cloze = _cloze(passage, args)
    record["candidates"] = have + score_candidates(host, source, _questions(passage), cloze, replay, args, len(have))
    record["methods"].update(choose(record["candidates"]))
    record["seconds"] = round(record["seconds"] + time.perf_counter() - started, 1)
    return True


def run_passage(host: AdapterHost, passage: Passage, replay, args) -> dict:
    model, tokenizer = host.peft, host.tokenizer
    source = _source(passage)
    questions = _questions(passage)
    cloze = _cloze(passage, args)
    started = time.perf_counter()
    results: dict[str, dict] = {}

    with host.using(None):
        results["base"] = _score(ask_and_grade(model, tokenizer, questions))
        results["in_context"] = _score(ask_and_grade(model, tokenizer, questions, context=source))

    def train_and_grade(name: str, texts: list[str], choice, seed: int) -> dict:
        return _train_and_grade(host, name, texts, choice, seed, questions, replay, args)

    results["passage"] = train_and_grade("passage", [source], DEFAULT_CHOICE, args.seed)
    for family in args.families:
        with host.using(None):
            edit = generate_passage_self_edit(model, tokenizer, source, family, seed=args.seed)
        scored = train_and_grade(f"se-{family}", [source, *edit.lines], DEFAULT_CHOICE, args.seed)
        scored["self_edit"] = {"raw": edit.raw, "lines": list(edit.lines)}
        results[f"self_edit:{family}"] = scored

    scored_candidates = score_candidates(host, source, questions, cloze, replay, args, start=0)
    results.update(choose(scored_candidates))
    return {
        "passage_id": passage.passage_id,
        "n_questions": len(questions),
        "n_cloze": len(cloze),
        "seconds": round(time.perf_counter() - started, 1),
        "methods": results,
        "candidates": scored_candidates,
    }


def subset_rows(record: dict) -> dict[str, dict]:
    """Best-of-K among some of the candidates: the first 1, 2, 4, ... (``best_of_<j>``, how
    the choice grows with K) and, when the K span several families, each family's
    own (``best_of_k:<family>``)."""
    candidates = record.get("candidates", [])
    rows = {}
    j = 1
    while j < len(candidates):
        rows[f"best_of_{j}"] = choose(candidates[:j])["best_of_k"]
        j *= 2
    by_family: dict[str, list[dict]] = {}
    for candidate in candidates:
        by_family.setdefault(candidate["family"], []).append(candidate)
    if len(by_family) > 1:
        rows.update({f"best_of_k:{family}": choose(group)["best_of_k"] for family, group in by_family.items()})
    return rows


def summarize(records: list[dict]) -> list[dict]:
    records = [{**r, "methods": {**r["methods"], **subset_rows(r)}} for r in records]
    methods = list(dict.fromkeys(m for r in records for m in r["methods"]))
    order = [
        "base",
        "passage",
        *[m for m in methods if m.startswith("self_edit:")],
        *sorted(m for m in methods if m.startswith("policy:")),
        *sorted((m for m in methods if m.startswith("best_of_") and m[8:].isdigit()), key=lambda m: int(m[8:])),
        *sorted(m for m in methods if m.startswith("best_of_k:")),
        "best_of_k",
        "best_of_k_cloze",
        "in_context",
    ]
    rows = []
    for method in [m for m in order if m in methods]:
        scored = [r["methods"][method] for r in records if method in r["methods"]]
        correct = [c for m in scored for c in m["correct"]]
        f1 = [v for m in scored for v in m["f1"]]
        rows.append(
            {
                "method": method,
                "accuracy": round(sum(correct) / len(correct), 4),
                "f1": round(sum(f1) / len(f1), 4),
                "ci95": [round(x, 4) for x in wilson_interval(sum(correct), len(correct))],
                "f1_ci95": [round(x, 4) for x in mean_interval(f1)],
                "n_questions": len(correct),
            }
        )
    return rows


def goal(records: list[dict]) -> dict:
    """The issue's goal: best-of-K against LoRA on the passage alone (points) and the in-context ceiling (ratio)."""
    return bootstrap_gain_and_ratio(
        [
            (
                r["n_questions"],
                sum(r["methods"]["best_of_k"]["correct"]),
                sum(r["methods"]["passage"]["correct"]),
                sum(r["methods"]["in_context"]["correct"]),
            )
            for r in records
        ]
    )


def print_table(rows: list[dict], n_passages: int, seconds: float) -> None:
    print(f"\nSQuAD knowledge incorporation: {n_passages} passages, {seconds:.0f} s per passage")
    print(f"{'method':28}{'accuracy':>10}{'95% CI':>18}{'F1':>8}{'questions':>11}")
    for row in rows:
        lo, hi = row["ci95"]
        print(
            f"{row['method']:28}{row['accuracy'] * 100:>9.1f}%{f'{lo * 100:.1f}-{hi * 100:.1f}%':>18}"
            f"{row['f1'] * 100:>7.1f}%{row['n_questions']:>11}"
        )


def _read_records(path: Path) -> dict[str, dict]:
    if not path.exists():
        return {}
    return {r["passage_id"]: r for r in map(json.loads, path.read_text().splitlines())}


def _store(path: Path, record: dict) -> None:
    """Add or replace ``record`` in the per-passage file, atomically and under a lock (shards share it)."""
    with path.with_suffix(".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = _read_records(path)
        records[record["passage_id"]] = record
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records.values()))
        tmp.replace(path)


def _shard(value: str) -> tuple[int, int]:
    index, _, count = value.partition("/")
    if not (index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"expected I/N with 0 <= I < N, got {value!r}")
    return int(index), int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.squad", description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad-file", type=Path, help="SQuAD v1.1 JSON (default: the verified dev set)")
    parser.add_argument("--passages-file", type=Path, help="explicit passages in SQuAD JSON format (all used)")
    parser.add_argument("--n", type=int, default=50, help="number of passages to sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=4, help="candidates for best-of-K")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), help="self-edit families to report")
    parser.add_argument(
        "--candidate-families", nargs="+", default=["rewrite"], help="families the K candidates are sampled from"
    )
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-steps", type=int, default=24, help="LoRA steps cap per candidate")
    parser.add_argument("--replay-ratio", type=float, default=0.5, help="replay examples per training example")
    parser.add_argument(
        "--policy",
        type=Path,
        action="append",
        default=[],
        help="a self-edit policy version directory (python -m training.policy.improve); repeatable",
    )
    parser.add_argument("--policy-family", default="implications", help="prompt family the policy writes with")
    parser.add_argument("--base-model", default=None, help="model folder or .gguf (default: bundled SmolLM2)")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--out", type=Path, default=Path("docs/bench-squad.json"))
    parser.add_argument(
        "--shard",
        type=_shard,
        help="I/N: run only every N-th passage of the sample from the I-th (0-based), so N processes "
        "can share one --out; then --report-only writes the summary",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="only summarise the passages already in <out>.passages.jsonl (no model work)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)

    if args.passages_file:
        passages = load_passages(args.passages_file)
    else:
        squad_file = args.squad_file or ensure_squad(args.cache_dir / "squad", "dev")
        passages = sample_passages(load_passages(squad_file), args.n, args.seed)
    folder = prepare_base_model(args.base_model, args.cache_dir / "models")
    host = replay = None
    if not args.report_only:
        host = AdapterHost(load_model(folder))
        with host.using(None):
            replay = load_or_build(host.peft, host.tokenizer, args.cache_dir / "replay" / f"{folder.name}.json")

    policies = [PolicyRef.from_dir(path) for path in args.policy]
    partial = args.out.with_suffix(".passages.jsonl")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = _read_records(partial)
    if args.shard:
        index, count = args.shard
        passages = passages[index::count]
    records = []
    for passage in passages:
        record = done.get(passage.passage_id)
        if record is None and args.report_only:
            continue
        if record is None:
            record = run_passage(host, passage, replay["replay"], args)
            _store(partial, record)
        missing = [p for p in policies if policy_method(p) not in record["methods"]]
        if not args.report_only:
            extended = extend_candidates(host, passage, record, replay["replay"], args)
            for policy in missing:
                record["methods"][policy_method(policy)] = policy_row(host, passage, policy, replay["replay"], args)
            if extended or missing:
                _store(partial, record)
        records.append(record)
        rows = summarize(records)
        log.info(
            "passage %d/%d (%s) %.0fs: %s",
            len(records),
            len(passages),
            passage.passage_id,
            record["seconds"],
            ", ".join(f"{r['method']} {r['accuracy'] * 100:.0f}%" for r in rows),
        )
    seconds = sum(r["seconds"] for r in records) / max(1, len(records))
    rows = summarize(records)
    print_table(rows, len(records), seconds)
    target = goal(records) if records else None
    if target:
        print(
            f"best_of_k: {target['gain_points']:+.1f} points over the passage alone "
            f"(95 % {target['gain_ci95'][0]:.1f} to {target['gain_ci95'][1]:.1f}; goal >= 10), "
            f"{target['ratio'] * 100:.1f} % of in_context "
            f"({target['ratio_ci95'][0] * 100:.0f}-{target['ratio_ci95'][1] * 100:.0f} %; goal >= 90 %), "
            f"bootstrap over passages"
        )
    if args.shard:
        print(f"shard {args.shard[0]}/{args.shard[1]} done; --report-only without --shard writes {args.out}")
        return 0
    config = {
        k: (str(v) if isinstance(v, Path) else [str(x) for x in v] if k == "policy" else v)
        for k, v in vars(args).items()
    }
    args.out.write_text(
        json.dumps(
            {
                "config": {
                    **config,
                    "base_model": folder.name,
                    "device": "cuda" if torch.cuda.is_available() else "cpu",
                    "grid": [c.to_dict() for c in GRID],
                },
                "n_passages": len(records),
                "seconds_per_passage": round(seconds, 1),
                "rows": rows,
                "goal": target,
                "passage_ids": [r["passage_id"] for r in records],
                "policies": {policy_method(p): str(p.path) for p in policies},
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
