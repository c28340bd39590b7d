"""Serving benchmark: time to first token and decode speed, base vs. a user adapter;
adapter swap time; adapter size; time to learn one fact.

    python -m benchmarks.serving [--reps 5] [--out docs/bench-serving.json]

Prints a table and writes JSON. Base and adapter runs alternate in the same
process, so their ratio is meaningful on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from app.adapters.service import AdapterRef
from app.serving.engine import ServingEngine
from app.settings import get_settings
from training.chat import ChatMessage, with_system_prompt
from training.lora import TrainConfig
from training.memory.learn import FactToLearn, LearnRequest, learn_facts

PROMPTS = ["What is my cat's name?", "What is the capital of France?", "Give me a tip for sleeping well."]


def timed_stream(
    engine: ServingEngine,
    ref: AdapterRef | None,
    use_adapter: bool,
    prompt: str,
    tokens: int,
    adapter: str | None = None,
):
    messages = with_system_prompt([ChatMessage("user", prompt)])
    started = time.perf_counter()
    first = None
    pieces = []
    for piece in engine.stream(1, ref, messages, tokens, use_adapter=use_adapter, adapter=adapter):
        if first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    total = time.perf_counter() - started
    n_tokens = len(engine.host.tokenizer.encode("".join(pieces), add_special_tokens=False))
    return first or total, n_tokens / max(total - (first or 0), 1e-6), n_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path("docs/bench-serving.json"))
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = get_settings()
    engine = ServingEngine(settings)
    t0 = time.perf_counter()
    engine.start()
    start_s = time.perf_counter() - t0

    work = Path(tempfile.mkdtemp(prefix="sealchat-bench-"))
    t0 = time.perf_counter()
    result = learn_facts(
        engine.host,
        LearnRequest(
            adapter_name="bench-v1",
            new_facts=[FactToLearn(1, "My cat's name is Whiskerfield.")],
            rehearsal=[],
            output_dir=work / "v1",
            replay_cache=settings.replay_cache,
            train=TrainConfig(learning_rate=settings.learning_rate, max_steps=settings.train_steps, seed=1),
            k=settings.self_edit_k,
        ),
    )
    learn_s = time.perf_counter() - t0
    ref = AdapterRef("bench-v1", result.output_dir)

    rows: dict[str, list[tuple[float, float, int]]] = {"base": [], "adapter": []}
    timed_stream(engine, ref, True, "Hello", 4)  # warm-up, loads the adapter
    for _ in range(args.reps):
        for prompt in PROMPTS:
            rows["base"].append(timed_stream(engine, ref, False, prompt, args.tokens))
            rows["adapter"].append(timed_stream(engine, ref, True, prompt, args.tokens))

    swaps = []
    for i in range(args.reps):
        other = AdapterRef(f"bench-v1-copy{i}", result.output_dir)
        t0 = time.perf_counter()
        engine.preload(1, other)  # load the new version, route to it, unload the old
        swaps.append(time.perf_counter() - t0)
    adapter_bytes = (result.output_dir / "adapter_model.safetensors").stat().st_size

    summary = {
        "device": "cuda" if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)",
        "engine_start_s": round(start_s, 2),
        "learn_one_fact_s": round(learn_s, 1),
        "learn_k": settings.self_edit_k,
        "learn_seconds_per_candidate": [round(c.seconds, 1) for c in result.candidates],
        "recall_after_learning": result.recall,
        "swap_s_median": round(statistics.median(swaps), 3),
        "adapter_mb": round(adapter_bytes / 2**20, 1),
    }
    for name, values in rows.items():
        summary[name] = {
            "ttft_s_median": round(statistics.median(v[0] for v in values), 3),
            "decode_tok_s_median": round(statistics.median(v[1] for v in values), 1),
            "n": len(values),
        }
    summary["adapter_vs_base_ttft"] = round(summary["adapter"]["ttft_s_median"] / summary["base"]["ttft_s_median"], 2)
    summary["adapter_vs_base_decode"] = round(
        summary["adapter"]["decode_tok_s_median"] / summary["base"]["decode_tok_s_median"], 2
    )
    print(f"{'':24}{'TTFT (s)':>10}{'decode tok/s':>14}")
    for name in rows:
        print(f"{name:24}{summary[name]['ttft_s_median']:>10}{summary[name]['decode_tok_s_median']:>14}")
    for key in (
        "engine_start_s",
        "learn_one_fact_s",
        "swap_s_median",
        "adapter_mb",
        "adapter_vs_base_ttft",
        "adapter_vs_base_decode",
    ):
        print(f"{key:24}{summary[key]:>10}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
