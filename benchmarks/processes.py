"""Processes of a running sealchat, seen from outside, and the services a benchmark
starts it with (a fresh PostgreSQL database, a private Redis): for the fault and
load benchmarks and tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = "postgresql+psycopg://127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A private redis-server: the external Redis of a deployment."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder, self.process = port, folder, None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


def fresh_database(name: str) -> str:
    """An empty PostgreSQL database ``name`` on 127.0.0.1:5432 (dropped first if it exists)."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return f"postgresql+psycopg://127.0.0.1:5432/{name}"


def run_env(work: Path, database_url: str, redis: Redis, **settings: str) -> dict[str, str]:
    """The environment of a `sealchat run` on ``database_url`` and ``redis``, with its
    data under ``work``: the bundled model and replay answers cached in .cache reused."""
    (work / "data" / "replay").mkdir(parents=True, exist_ok=True)
    cached_replay = ROOT / ".cache" / "replay" / "stack-base-answers.json"
    if cached_replay.is_file():
        shutil.copyfile(cached_replay, work / "data" / "replay" / "base-answers.json")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
        "SEALCHAT_DATA_DIR": str(work / "data"),
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    models = ROOT / ".cache" / "models"
    model = next((p for p in models.iterdir() if p.is_dir()), None) if models.is_dir() else None
    if model is not None:
        env["SEALCHAT_BASE_MODEL"] = str(model)
    return env


def start_run(env: dict[str, str], port: int, log: Path) -> subprocess.Popen:
    """`sealchat run` (supervised web process and worker) in its own process group."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run", "--port", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_run(run: subprocess.Popen) -> None:
    os.killpg(run.pid, signal.SIGTERM)
    try:
        run.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)


@dataclass
class BenchStack:
    """A `sealchat run` a benchmark started, with its own database and Redis."""

    work: Path
    database_url: str
    redis: Redis
    url: str
    env: dict[str, str]
    run: subprocess.Popen

    @property
    def log(self) -> Path:
        return self.work / "run.log"

    def stop(self) -> None:
        stop_run(self.run)
        self.redis.kill()


def start_stack(database: str, **settings: str) -> BenchStack:
    """`sealchat run` on a fresh PostgreSQL database ``database`` and a private Redis,
    its data in a new temporary folder, with ``settings`` (environment variables)."""
    work = Path(tempfile.mkdtemp(prefix=database.replace("_", "-") + "-"))
    database_url = fresh_database(database)
    redis = Redis(free_port(), work)
    redis.start()
    port = free_port()
    env = run_env(work, database_url, redis, **settings)
    run = start_run(env, port, work / "run.log")
    return BenchStack(work, database_url, redis, f"http://127.0.0.1:{port}", env, run)


def create_user(env: dict[str, str], email: str) -> str:
    """A user made by the CLI; their API key."""
    made = subprocess.run(
        [sys.executable, "-m", "app.cli", "create-user", email],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.split()[-1]


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    return [root] + [p for child in children_of(root) for p in tree(child)]


def worker_tree(run_pid: int) -> list[int]:
    """The Celery worker that `sealchat run` (``run_pid``) supervises, with its pool processes."""
    return [p for child in children_of(run_pid) if "celery" in command_of(child) for p in tree(child)]


def _rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)


def pool_process(run_pid: int) -> int | None:
    """The worker's pool process, the one that runs consolidations (the child of the
    Celery worker holding the model: the largest; the embedded beat is small)."""
    workers = [child for child in children_of(run_pid) if "celery" in command_of(child)]
    pool = [p for worker in workers for p in children_of(worker)]
    return max(pool, key=_rss_kb, default=None)


def wait_until_serving(url: str, process: subprocess.Popen, timeout_s: float, log: Path) -> None:
    """Until ``url``/login answers 200; RuntimeError with the log's tail if ``process`` dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(url + "/login", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"the web process did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def vllm_tree(run_pid: int) -> list[int]:
    """The vLLM server that `sealchat run` (``run_pid``) supervises, with its engine processes."""
    return [p for child in children_of(run_pid) if "vllm.entrypoints" in command_of(child) for p in tree(child)]
