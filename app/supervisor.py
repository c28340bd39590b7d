"""``sealchat run`` keeps its processes up: a child that dies is started again.

The web process, the Celery worker, the vLLM server (``SEALCHAT_ENGINE=vllm``)
and (embedded default) the Redis server are watched separately, so a worker
killed mid-learning (kill -9, out of memory) is restarted while the web process
keeps serving, and a dead embedded Redis is started again on its socket.
Restarts back off (1 s, doubling to 60 s) while a child keeps dying quickly,
and reset once it has stayed up for a minute.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
STABLE_AFTER_S = 60.0


@dataclass
class Child:
    name: str
    command: Sequence[str]
    env: dict[str, str] | None = None  # None: this process's environment
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None
    restarts: int = 0

    def start(self) -> None:
        self.process = subprocess.Popen(list(self.command), env=self.env)
        self.started_at = time.monotonic()
        self.restart_at = None


class Supervisor:
    """Start the children, restart any that exits, until ``stop()``."""

    def __init__(
        self, children: Sequence[Child], keep_alive: Callable[[], None] | None = None, poll_s: float = 0.5
    ) -> None:
        self.children = list(children)
        self.keep_alive = keep_alive  # e.g. restart the embedded Redis if it died
        self.poll_s = poll_s
        self.stopping = threading.Event()

    def start(self) -> None:
        for child in self.children:
            child.start()

    def check(self) -> None:
        """One round: note children that exited, start those whose backoff has passed."""
        now = time.monotonic()
        if self.keep_alive is not None:
            try:
                self.keep_alive()
            except Exception:  # noqa: BLE001 - tried again next round
                log.exception("keep-alive check failed")
        for child in self.children:
            if child.process is not None and child.restart_at is None and child.process.poll() is not None:
                if now - child.started_at >= STABLE_AFTER_S:
                    child.backoff_s = FIRST_BACKOFF_S
                child.restart_at = now + child.backoff_s
                code = child.process.returncode
                log.warning("%s exited with code %s; restarting in %.0f s", child.name, code, child.backoff_s)
                child.backoff_s = min(child.backoff_s * 2, MAX_BACKOFF_S)
            if child.restart_at is not None and now >= child.restart_at and not self.stopping.is_set():
                child.restarts += 1
                child.start()
                log.info("%s restarted (restart %d)", child.name, child.restarts)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.check()
            self.stopping.wait(self.poll_s)

    def stop(self, timeout_s: float = 20.0) -> int:
        self.stopping.set()
        running = [c.process for c in self.children if c.process is not None and c.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
        return max((c.process.returncode or 0) for c in self.children if c.process is not None)
