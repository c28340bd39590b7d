"""Kill -9 the worker, the web process or Redis at random points, and count what was lost.

    .venv/bin/python -m benchmarks.faults --cycles 21 --out docs/bench-faults.json
    .venv/bin/python -m benchmarks.faults --mode storm --cycles 21 --out docs/bench-faults-storm.json

The product as an operator runs it at scale: ``sealchat run`` (supervised web and
worker) on PostgreSQL (a fresh database ``sealchat_faults`` on 127.0.0.1:5432) and
an external Redis (a private ``redis-server`` on a free port, no persistence, so a
kill loses the queue and the sessions). Training is shortened (two candidates,
each checkpointed when it finishes, and 8 LoRA steps) so many consolidations fit
in the run.

Each cycle teaches one new fact through the API (retrying while the web process
is down) and sends SIGKILL to one target, in turn: the worker (its whole process
tree; the supervisor restarts it), the web process (restarted the same way), or
Redis (restarted 2 s later, as its service manager would). When:

- ``--mode consolidation`` (the default): once the fact's consolidation is running,
  after a random 1 to ``--max-delay`` s, so the kill lands at a random point of it;
  then the cycle waits until the user has nothing pending or learning before the
  next one. One kill per consolidation.
- ``--mode storm``: a random 1-30 s after teaching, without waiting for anything:
  kills come faster than a consolidation finishes, and the crash budget decides.

A prober checks every 0.5 s
that the live adapter version is complete on disk (every group's weights match
the digest the database holds). At the end it waits for every fact to be learnt
or failed, and reports:

- lost: taught (the API answered 201) but gone or changed in the database;
- stuck: neither learnt nor failed when the drain timed out;
- half-written versions ever live: a live version with missing or changed files.

Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from benchmarks.processes import (
    children_of,
    command_of,
    create_user,
    start_stack,
    wait_until_serving,
    worker_tree,
)
from training.adapters import sha256_file

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "sealchat_faults"
TARGETS = ("worker", "web", "redis")


class Prober(threading.Thread):
    """Checks, twice a second, that the live version's files are what the database says."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine(database_url)
        self.stopping = threading.Event()
        self.checks = 0
        self.incomplete: list[str] = []
        self._verified: set[tuple[int, str]] = set()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(
                        text(
                            "SELECT v.id, v.name, v.path, v.groups FROM adapter_versions v "
                            "JOIN users u ON u.active_adapter_id = v.id"
                        )
                    ).all()
            except Exception:  # noqa: BLE001 - the database stays up; a hiccup is retried
                continue
            for version_id, name, path, groups in rows:
                self.checks += 1
                for key, group in (groups or {}).items():
                    if (version_id, key) in self._verified:
                        continue
                    weights = Path(path) / group["dir"] / "adapter_model.safetensors"
                    if not weights.is_file() or sha256_file(weights) != group["sha256"]:
                        self.incomplete.append(f"{name}/g{key}")
                    else:
                        self._verified.add((version_id, key))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=60, help="kills in all, taking the targets in turn")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=2, help="self-edit candidates a consolidation, each checkpointed")
    parser.add_argument("--mode", choices=("consolidation", "storm"), default="consolidation")
    parser.add_argument("--max-delay", type=float, default=60, help="consolidation mode: latest kill, s into the run")
    parser.add_argument("--drain-timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, default=Path("docs/bench-faults.json"))
    args = parser.parse_args()
    targets = args.targets.split(",")
    rng = random.Random(args.seed)

    stack = start_stack(
        DATABASE, SEALCHAT_SELF_EDIT_K=str(args.k), SEALCHAT_TRAIN_STEPS="8", SEALCHAT_LEARNING_RATE="1e-3"
    )
    work, database_url, redis, url, env, run = (
        stack.work,
        stack.database_url,
        stack.redis,
        stack.url,
        stack.env,
        stack.run,
    )
    prober = Prober(database_url)
    started = time.monotonic()
    taught: dict[int, str] = {}
    kills: Counter[str] = Counter()
    probes = Counter()
    landed: Counter[str] = Counter()
    try:
        wait_until_serving(url, run, 600, work / "run.log")
        key = create_user(env, "faults@example.com")
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        prober.start()

        def teach(text_: str) -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                try:
                    answer = api.post("/api/facts", json={"text": text_})
                    probes[answer.status_code // 100 * 100] += 1
                    if answer.status_code == 201:
                        taught[answer.json()["id"]] = text_
                        return
                except httpx.HTTPError:
                    probes["refused"] += 1
                time.sleep(0.5)
            raise RuntimeError(f"could not teach {text_!r} for 300 s")

        engine = create_engine(database_url)

        def open_facts() -> list[tuple[int, str, str | None]]:
            """(id, status, stage) of facts neither learnt nor failed."""
            while True:
                try:
                    with engine.connect() as conn:
                        query = "SELECT id, status, stage FROM facts WHERE status IN ('pending', 'learning')"
                        return [tuple(row) for row in conn.execute(text(query))]
                except Exception:  # noqa: BLE001 - PostgreSQL stays up; a hiccup is retried
                    time.sleep(1)

        def wait_for(condition, timeout: float) -> bool:  # noqa: ANN001
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if condition():
                    return True
                time.sleep(0.5)
            return False

        for cycle in range(args.cycles):
            target = targets[cycle % len(targets)]
            teach(f"My locker number {cycle} is {rng.randint(1000, 9999)}.")
            if args.mode == "storm":
                time.sleep(rng.uniform(1, 30))
            else:
                wait_for(lambda: any(status == "learning" for _, status, _ in open_facts()), 300)
                time.sleep(rng.uniform(1, args.max_delay))
            running = [stage or "queued" for _, status, stage in open_facts() if status == "learning"]
            landed[(running[0].split(":")[-1].strip() if running else "between runs")] += 1
            if target == "worker":
                pids = worker_tree(run.pid)
            elif target == "web":
                pids = [p for p in children_of(run.pid) if "uvicorn" in command_of(p)]
            else:
                pids = []
                redis.kill()
                time.sleep(2)
                redis.start()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            kills[target] += 1
            where = running[0] if running else "between runs"
            print(
                f"cycle {cycle + 1}/{args.cycles}: killed {target} ({len(pids) or 1} process(es)) during: {where}",
                flush=True,
            )
            if args.mode == "consolidation":
                settled = wait_for(lambda: not open_facts(), args.drain_timeout)
                print(f"  settled: {settled}; {time.monotonic() - started:.0f} s so far", flush=True)

        # Drain: every fact learnt or failed.
        deadline = time.monotonic() + args.drain_timeout
        while True:
            with engine.connect() as conn:
                rows = {
                    i: (t, s, e, c)
                    for i, t, s, e, c in conn.execute(text("SELECT id, text, status, error, crashes FROM facts"))
                }
            open_ = [i for i in taught if i in rows and rows[i][1] not in ("learned", "failed")]
            if not open_ or time.monotonic() > deadline:
                break
            time.sleep(5)
    finally:
        prober.stopping.set()
        stack.stop()

    lost = [i for i, t in taught.items() if i not in rows or rows[i][0] != t]
    statuses = Counter(rows[i][1] for i in taught if i in rows)
    failures = Counter((rows[i][2] or "")[:120] for i in taught if i in rows and rows[i][1] == "failed")
    result = {
        "cycles": args.cycles,
        "kills": dict(kills),
        "taught": len(taught),
        "statuses": dict(statuses),
        "lost": len(lost),
        "stuck": len(open_),
        "half_written_live": sorted(set(prober.incomplete)),
        "live_checks": prober.checks,
        "teach_answers": {str(k): v for k, v in probes.items()},
        "failure_reasons": dict(failures),
        # Kills of a run that had checkpointed nothing new count against its facts.
        "crashes_counted": sum(rows[i][3] for i in taught if i in rows),
        "seconds": round(time.monotonic() - started),
        "mode": args.mode,
        "kills_landed_in": dict(landed),
        "settings": {"k": args.k, "train_steps": 8, "database": "postgresql", "redis": "external, no persistence"},
    }
    print(f"{'kills (worker/web/redis)':<28} {kills['worker']}/{kills['web']}/{kills['redis']}")
    for name in ("taught", "lost", "stuck"):
        print(f"{name:<28} {result[name]}")
    print(f"{'learned / failed':<28} {statuses.get('learned', 0)} / {statuses.get('failed', 0)}")
    print(f"{'crashes counted (all facts)':<28} {result['crashes_counted']}")
    print(f"{'half-written live versions':<28} {len(result['half_written_live'])} (in {prober.checks} checks)")
    print(f"{'time':<28} {result['seconds']} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}; logs in {work}")


if __name__ == "__main__":
    main()
