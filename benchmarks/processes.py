"""Processes of a running sealchat, seen from outside: for the fault benchmark and tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


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
