"""What making a learnt update smaller costs: reworded questions, the self-quiz and locality, paired.

    python -m benchmarks.update_scale --facts-file training/data/personal_facts_heldout2.jsonl --n 12

Each of the first ``--n`` facts of a dev set is learnt alone into a fresh adapter,
as the product learns a fact (``learn_facts``, K=1, written as trained). The same
adapter is then read at each setting ``learn.shrink_update`` can choose: as
trained, without its attention layers, and without them scaled by 0.7, 0.5 and
0.35. At each setting: the benchmark's reworded questions (no context), the
self-quiz the product decides with (``quiz_facts``, the model's own written
question included) and the adapter's own locality on the 50 held-out general
prompts. Paired: every setting reads the same trained weights, so a difference
is the setting's alone.

``--without-down``: also read each adapter without attention and without the
MLP's down projection (only its gate and up projections left).

``--energies 0.5 0.7``: also read each adapter without attention and with its
LoRA A matrices kept out of the leading input subspace of general text
(``training.nullspace``, that share of its energy), measured and not adopted
(docs/decisions/017).
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

import torch

from training import locality
from training.adapters import AdapterHost
from training.lora import TrainConfig
from training.memory.fact_sets import load_facts
from training.memory.learn import (
    ATTENTION_MODULES,
    FACT_KL_WEIGHT,
    SHRINK_SCALES,
    FactToLearn,
    LearnRequest,
    learn_facts,
    quiz_facts,
    written_probe,
)
from training.memory.quiz import ask_and_grade
from training.model import load_model, prepare_base_model
from training.nullspace import input_spectra, project_out
from training.replay import load_or_build

WITHOUT_ATTENTION = dict.fromkeys(ATTENTION_MODULES, 0.0)
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")


def settings(scales, energies, without_down: bool = False) -> dict[str, tuple[float, dict[str, float], float | None]]:
    """name -> (factor, per-module factors as ``AdapterHost.rescale`` takes them,
    share of the general-input energy projected out of LoRA A, or None)."""
    return {
        "as trained": (1.0, {}, None),
        "no attention": (1.0, WITHOUT_ATTENTION, None),
        **({"no attention, no down": (1.0, {**WITHOUT_ATTENTION, "down_proj": 0.0}, None)} if without_down else {}),
        **{f"no attention, {s}x": (s, WITHOUT_ATTENTION, None) for s in sorted(scales, reverse=True)},
        **{f"no attention, null {e}": (1.0, WITHOUT_ATTENTION, e) for e in energies},
    }


@torch.no_grad()
def restore_a(host: AdapterHost, trained: dict[str, torch.Tensor]) -> None:
    for name, param in host.peft.named_parameters():
        if name in trained:
            param.copy_(trained[name])


def _share(flags) -> float:
    flags = list(flags)
    return sum(flags) / len(flags) if flags else 0.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.update_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--facts-file", type=Path, required=True)
    parser.add_argument("--n", type=int, default=12)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache"))
    parser.add_argument("--out", type=Path, default=Path("docs/bench-update-scale.json"))
    parser.add_argument("--scales", type=float, nargs="*", default=list(SHRINK_SCALES))
    parser.add_argument("--energies", type=float, nargs="*", default=[])
    parser.add_argument(
        "--without-down", action="store_true", help="also read each adapter without attention and down_proj"
    )
    args = parser.parse_args(argv)
    table = settings(args.scales, args.energies, args.without_down)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    facts = load_facts(args.facts_file)[: args.n]
    folder = prepare_base_model(None, args.cache_dir / "models")
    host = AdapterHost(load_model(folder))
    replay_cache = args.cache_dir / "replay" / f"{folder.name}.json"
    with host.using(None):
        replay = load_or_build(host.peft, host.tokenizer, replay_cache)
        base_logits = locality.answer_logits(host.peft, host.tokenizer, replay["locality"])
        spectra = input_spectra(host.peft, host.tokenizer, replay["replay"], MLP_MODULES) if args.energies else {}
    work = args.cache_dir / "bench-update-scale"
    shutil.rmtree(work, ignore_errors=True)  # scratch: each fact's adapter is read here, then removed
    started, rows = time.perf_counter(), []
    for i, fact in enumerate(facts):
        result = learn_facts(
            host,
            LearnRequest(
                adapter_name=f"scale-{i}",
                new_facts=[FactToLearn(fact.index, fact.text)],
                rehearsal=[],
                output_dir=work / f"{time.time_ns()}-{i}",
                replay_cache=replay_cache,
                drop_attention=False,
                shrink_scales=(),
                train=TrainConfig(learning_rate=args.lr, max_steps=args.steps, seed=i, kl_weight=FACT_KL_WEIGHT),
            ),
        )
        with host.using(None):
            written = written_probe(host.peft, host.tokenizer, fact.text)
        host.load("probe", result.output_dir)
        row: dict = {"fact": fact.text, "settings": {}}
        try:
            trained_a = {n: p.detach().clone() for n, p in host.peft.named_parameters() if ".lora_A.probe." in n}
            with host.using("probe"):
                for name, (factor, per_module, energy) in table.items():
                    host.rescale("probe", factor, per_module)
                    restore_a(host, trained_a)
                    removed = project_out(host.peft, "probe", spectra, energy) if energy is not None else {}
                    graded = ask_and_grade(host.peft, host.tokenizer, list(fact.questions), max_new_tokens=40)
                    quiz = quiz_facts(host.peft, host.tokenizer, [fact.text], [written])[0]
                    adapted = locality.answer_logits(host.peft, host.tokenizer, replay["locality"])
                    row["settings"][name] = {
                        "reworded": _share(g.correct for g in graded),
                        "quiz": _share(q["recalled"] for q in quiz),
                        "locality": locality.compare(base_logits, adapted, replay["locality"]).kept,
                    }
                    if removed:
                        row["settings"][name]["directions_removed"] = round(statistics.mean(removed.values()), 1)
        finally:
            host.unload("probe")
            shutil.rmtree(result.output_dir, ignore_errors=True)
        rows.append(row)
        print(json.dumps(row), flush=True)
    measures = ("reworded", "quiz", "locality")
    summary = {
        name: {k: round(statistics.mean(r["settings"][name][k] for r in rows), 3) for k in measures} for name in table
    }
    results = {
        "facts_file": str(args.facts_file),
        "n": len(rows),
        "summary": summary,
        "facts": rows,
        "seconds_total": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"\n{'setting':>22} {'reworded questions':>19} {'self-quiz':>10} {'adapter locality':>17}")
    for name, s in summary.items():
        print(f"{name:>22} {s['reworded']:>19.2f} {s['quiz']:>10.2f} {s['locality']:>17.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
