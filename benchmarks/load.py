"""Many people chatting at once while their facts are being learnt: what they wait, and what fails.

    .venv/bin/python -m benchmarks.load --users 10 --concurrency 50 --engine both --out docs/bench-load.json

``--engine both`` (the default) runs the whole benchmark on the local engine and
then on vLLM (``SEALCHAT_ENGINE=vllm``; ``sealchat run`` starts the server;
needs ``scripts/setup_vllm.sh``), one after the other, and prints them side by side.

``sealchat run`` on PostgreSQL (a fresh database ``sealchat_load``) and a private
Redis, as an operator runs it. Each of ``--users`` users teaches one secret (a
locker code no other user has), so consolidations run and new versions are
promoted (hot-swapped into the web process) during the load. Training is
shortened (one candidate, 8 LoRA steps) so the promotions land inside the run.

Phases, each timed on its own:

1. one stream at a time (``--solo`` requests in a row): the baseline;
2. 8 streams at once: aggregate tokens/s against the baseline;
3. ``--rounds`` bursts of ``--concurrency`` chat completions at once from all users,
   streaming and not, with the user's adapter (``model: seal``) and the base model,
   half of them asking for the user's own code.

Reports p50/p95 time to first token (streaming, admitted), aggregate tokens/s,
answers by status (2xx / 429 / 503 / other 5xx), the slowest refusal, versions
promoted during the load, and cross-user answers: replies that hold another
user's code; and how long each hot-swap took in the web process (the adapter
loaded, or registered on the vLLM server, on the promotion message). Prints a
table per engine and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from benchmarks.processes import (
    ROOT,
    create_user,
    start_stack,
    wait_until_serving,
)

DATABASE = "sealchat_load"
MAX_TOKENS = 24


@dataclass
class Outcome:
    status: int
    seconds: float  # until the whole answer (or the refusal) arrived
    first_token: float | None = None  # streaming: until the first content piece
    tokens: int = 0
    text: str = ""
    user: int = 0


@dataclass
class Phase:
    name: str
    wall: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self, codes: dict[int, str]) -> dict:
        ok = [o for o in self.outcomes if 200 <= o.status < 300]
        firsts = sorted(o.first_token for o in ok if o.first_token is not None)
        refused = [o.seconds for o in self.outcomes if o.status in (429, 503)]
        statuses = Counter(
            "2xx"
            if 200 <= o.status < 300
            else str(o.status)
            if o.status in (429, 503)
            else "5xx"
            if o.status >= 500
            else "other"
            for o in self.outcomes
        )
        cross = [o for o in ok if any(code in o.text for user, code in codes.items() if user != o.user)]
        return {
            "requests": len(self.outcomes),
            "statuses": dict(statuses),
            "ttft_p50_s": round(statistics.median(firsts), 3) if firsts else None,
            "ttft_p95_s": round(firsts[min(len(firsts) - 1, int(0.95 * len(firsts)))], 3) if firsts else None,
            "tokens_per_s": round(sum(o.tokens for o in ok) / self.wall, 2) if self.wall else None,
            "refusal_p50_s": round(statistics.median(refused), 3) if refused else None,
            "slowest_refusal_s": round(max(refused), 3) if refused else None,
            "cross_user_answers": len(cross),
            "wall_s": round(self.wall, 1),
        }


@lru_cache
def _tokenizer():  # noqa: ANN202
    from transformers import AutoTokenizer

    models = ROOT / ".cache" / "models"
    return AutoTokenizer.from_pretrained(next(p for p in models.iterdir() if p.is_dir()))


def count_tokens(text_: str) -> int:
    """Tokens of a streamed reply, by the served model's tokenizer (pieces may hold several)."""
    return len(_tokenizer().encode(text_, add_special_tokens=False))


def chat(client: httpx.Client, user: int, question: str, model: str, stream: bool) -> Outcome:
    """One chat completion on ``client`` (made beforehand: building one costs tens of
    milliseconds, which would count as the server's time)."""
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "max_tokens": MAX_TOKENS,
        "stream": stream,
    }
    began = time.monotonic()
    try:
        if not stream:
            response = client.post("/v1/chat/completions", json=body)
            seconds = time.monotonic() - began
            if response.status_code != 200:
                return Outcome(response.status_code, seconds, user=user)
            answer = response.json()
            return Outcome(
                200,
                seconds,
                None,
                answer["usage"]["completion_tokens"],
                answer["choices"][0]["message"]["content"],
                user,
            )
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return Outcome(response.status_code, time.monotonic() - began, user=user)
            first, pieces = None, []
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                piece = json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                if piece:
                    first = first if first is not None else time.monotonic() - began
                    pieces.append(piece)
            text_ = "".join(pieces)
            return Outcome(200, time.monotonic() - began, first, count_tokens(text_), text_, user)
    except httpx.HTTPError:
        return Outcome(599, time.monotonic() - began, user=user)  # connection refused or reset: a failure


def client_for(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600)


def run_phase(name: str, calls: list[tuple], url: str) -> Phase:
    """``calls`` (key, user, question, model, stream) all at once, each in its own thread."""
    phase = Phase(name)
    start = threading.Event()

    def one(client: httpx.Client, call: tuple) -> None:
        start.wait()
        phase.outcomes.append(chat(client, *call))
        client.close()

    threads = [threading.Thread(target=one, args=(client_for(url, c[0]), c[1:])) for c in calls]
    for t in threads:
        t.start()
    began = time.monotonic()
    start.set()
    for t in threads:
        t.join()
    phase.wall = time.monotonic() - began
    return phase


def promoted_versions(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM adapter_versions WHERE promoted_at IS NOT NULL")).scalar()
    engine.dispose()
    return count


SWAP_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO \S+: user \d+ now served by (\S+) "
    r"\((\d+) of \d+ adapters loaded, ([0-9.]+)s\)",
    re.M,
)


def swaps(log: str, database_url: str) -> list[dict]:
    """Each promoted version's hot-swap in the web process (its log): how long loading
    its adapters took, and how long after the promotion it was live."""
    engine = create_engine(database_url)
    with engine.connect() as conn:
        promoted = dict(
            conn.execute(text("SELECT name, promoted_at FROM adapter_versions WHERE promoted_at IS NOT NULL")).all()
        )
    engine.dispose()
    found, seen = [], set()
    for m in SWAP_LINE.finditer(log):
        name, loaded = m.group(2), int(m.group(3))
        if name not in promoted or name in seen or not loaded:
            continue
        seen.add(name)
        live = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone()
        at = promoted[name]
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        found.append({"version": name, "load_s": float(m.group(4)), "live_after_s": (live - at).total_seconds()})
    return found


def run_engine(engine_name: str, args: argparse.Namespace) -> dict:
    """The three phases against `sealchat run` on ``engine_name``; the result as JSON."""
    rng = random.Random(args.seed)
    stack = start_stack(
        DATABASE,
        SEALCHAT_ENGINE=engine_name,
        SEALCHAT_SELF_EDIT_K="1",
        SEALCHAT_TRAIN_STEPS="8",
        SEALCHAT_LEARNING_RATE="1e-3",
    )
    work, database_url, url, env, run = stack.work, stack.database_url, stack.url, stack.env, stack.run
    phases: list[Phase] = []
    codes: dict[int, str] = {}
    try:
        wait_until_serving(url, run, 900, work / "run.log")
        keys = [create_user(env, f"load-{i}@example.com") for i in range(args.users)]
        for user, code in enumerate(rng.sample(range(1000, 9999), args.users)):
            codes[user] = str(code)
        for user, key in enumerate(keys):
            response = httpx.post(
                f"{url}/api/facts",
                json={"text": f"My locker code is {codes[user]}."},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            response.raise_for_status()

        general = "Name three colours of the rainbow."
        solo = Phase("1 stream")
        began = time.monotonic()
        with client_for(url, keys[0]) as client:
            for _ in range(args.solo):
                solo.outcomes.append(chat(client, 0, general, "base", True))
        solo.wall = time.monotonic() - began
        phases.append(solo)
        phases.append(
            run_phase("8 streams", [(keys[i % len(keys)], i % len(keys), general, "base", True) for i in range(8)], url)
        )
        promoted_before = promoted_versions(database_url)
        round_, bursts_began, promoted_by = 0, time.monotonic(), None
        # At least --rounds bursts, and more (for up to --max-wait s) until a version
        # is promoted during the load and one more burst has run after it: the
        # hot-swap must happen under load.
        while round_ < args.rounds or promoted_by is None or round_ <= promoted_by:
            if promoted_by is None and promoted_versions(database_url) > promoted_before:
                promoted_by = round_
            if promoted_by is None and time.monotonic() - bursts_began > args.max_wait:
                break
            calls = []
            for i in range(args.concurrency):
                user = rng.randrange(args.users)
                own = i % 2 == 0
                question = "What is my locker code?" if own else general
                calls.append((keys[user], user, question, "seal" if own or i % 4 == 1 else "base", i % 3 != 0))
            phases.append(run_phase(f"{args.concurrency} at once #{round_ + 1}", calls, url))
            round_ += 1
        promoted = promoted_versions(database_url) - promoted_before
        engine = create_engine(database_url)
        with engine.connect() as conn:
            learned = conn.execute(text("SELECT count(*) FROM facts WHERE status = 'learned'")).scalar()
        engine.dispose()
    finally:
        stack.stop()
    swapped = swaps(stack.log.read_text(), database_url)
    result = {
        "engine": engine_name,
        "phases": {p.name: p.summary(codes) for p in phases},
        "versions_promoted": promoted,
        "facts_learned": learned,
        "swaps": swapped,
        "swap_load_max_s": round(max(s["load_s"] for s in swapped), 3) if swapped else None,
        "swap_live_after_max_s": round(max(s["live_after_s"] for s in swapped), 3) if swapped else None,
        "logs": str(work),
    }
    solo_rate = result["phases"]["1 stream"]["tokens_per_s"]
    eight_rate = result["phases"]["8 streams"]["tokens_per_s"]
    result["speedup_8_streams"] = round(eight_rate / solo_rate, 2) if solo_rate and eight_rate else None
    return result


def print_table(result: dict) -> None:
    print(f"\n== engine: {result['engine']}")
    header = (
        f"{'phase':<18} {'req':>4} {'2xx':>4} {'429':>4} {'503':>4} {'5xx':>4} {'ttft p50':>9} "
        f"{'ttft p95':>9} {'tok/s':>7} {'refusal p50':>12} {'refusal max':>12} {'cross-user':>10}"
    )
    print(header)
    for name, s in result["phases"].items():
        st = s["statuses"]
        print(
            f"{name:<18} {s['requests']:>4} {st.get('2xx', 0):>4} {st.get('429', 0):>4} {st.get('503', 0):>4} "
            f"{st.get('5xx', 0) + st.get('other', 0):>4} {s['ttft_p50_s'] or '-':>9} {s['ttft_p95_s'] or '-':>9} "
            f"{s['tokens_per_s'] or '-':>7} {s['refusal_p50_s'] or '-':>12} {s['slowest_refusal_s'] or '-':>12} "
            f"{s['cross_user_answers']:>10}"
        )
    print(
        f"8 streams / 1 stream tokens/s: {result['speedup_8_streams']}; "
        f"versions promoted during the run: {result['versions_promoted']}; "
        f"hot-swaps: {len(result['swaps'])} (adapter load at most {result['swap_load_max_s']} s; "
        f"live at most {result['swap_live_after_max_s']} s after the promotion)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("local", "vllm", "both"), default="both")
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--max-wait", type=float, default=900, help="seconds of more bursts until a version is promoted during them"
    )
    parser.add_argument("--solo", type=int, default=4, help="requests of the one-stream baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs/bench-load.json"))
    args = parser.parse_args()

    count_tokens("warm up")  # load the tokenizer before anything is timed
    engines = ("local", "vllm") if args.engine == "both" else (args.engine,)
    results = {}
    for name in engines:  # one after the other: each has the machine to itself
        results[name] = run_engine(name, args)
        print_table(results[name])
    out = {
        "users": args.users,
        "concurrency": args.concurrency,
        "max_tokens": MAX_TOKENS,
        "settings": {"k": 1, "train_steps": 8, "database": "postgresql", "redis": "external"},
        "engines": results,
    }
    if len(results) == 2:
        print("\n== side by side")
        print(f"{'':<34} {'local':>10} {'vllm':>10}")
        rows = [
            ("1 stream tokens/s", lambda r: r["phases"]["1 stream"]["tokens_per_s"]),
            ("8 streams tokens/s", lambda r: r["phases"]["8 streams"]["tokens_per_s"]),
            ("8 streams / 1 stream", lambda r: r["speedup_8_streams"]),
            ("bursts: ttft p50 s", lambda r: _bursts(r, "ttft_p50_s", statistics.median)),
            ("bursts: 2xx", lambda r: _bursts(r, "2xx", sum)),
            ("bursts: 503 + 429", lambda r: _bursts(r, "503", sum) + _bursts(r, "429", sum)),
            ("bursts: 5xx", lambda r: _bursts(r, "5xx", sum)),
            ("cross-user answers", lambda r: sum(p["cross_user_answers"] for p in r["phases"].values())),
            ("versions promoted during bursts", lambda r: r["versions_promoted"]),
            ("hot-swap: adapter load max s", lambda r: r["swap_load_max_s"]),
            ("hot-swap: live after promotion max s", lambda r: r["swap_live_after_max_s"]),
        ]
        for label, get in rows:
            print(f"{label:<34} {get(results['local'])!s:>10} {get(results['vllm'])!s:>10}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}")


def _bursts(result: dict, key: str, combine) -> float | int | None:  # noqa: ANN001
    """``key`` (a summary field, or a status class) over the burst phases, combined."""
    values = []
    for name, summary in result["phases"].items():
        if "at once" not in name:
            continue
        value = summary.get(key) if key in summary else summary["statuses"].get(key, 0)
        if value is not None:
            values.append(value)
    return combine(values) if values else None


if __name__ == "__main__":
    main()
