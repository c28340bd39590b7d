"""The ``sealchat`` command: run the product, or one part of it.

sealchat run [--host 127.0.0.1] [--port 8000]   # migrate, prepare model, web + worker (+ vLLM server)
sealchat web [--host ...] [--port ...]          # the web process alone
sealchat worker                                  # a Celery worker alone
sealchat migrate                                 # apply database migrations
sealchat prepare-model                           # convert the bundled GGUF once
sealchat create-user EMAIL [--admin] [--password]   # prints an API key last; the password is read from stdin
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import time

from app.settings import MAX_SELF_EDIT_K, get_settings

log = logging.getLogger("sealchat")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _ensure_redis() -> bool:
    settings = get_settings()
    if settings.redis_url:
        return False
    from app.embedded_redis import ensure_running

    return ensure_running(settings.redis_socket)


def cmd_migrate(_: argparse.Namespace) -> int:
    from app.migrate import upgrade_head

    get_settings().data_path.mkdir(parents=True, exist_ok=True)
    upgrade_head()
    print("database is at the latest migration")
    return 0


def cmd_prepare_model(_: argparse.Namespace) -> int:
    """Convert the base model once, and compute its replay answers once, so the
    first fact a user teaches does not pay for either."""
    from training import replay
    from training.model import load_model, prepare_base_model

    settings = get_settings()
    started = time.perf_counter()
    folder = prepare_base_model(settings.base_model, settings.models_dir)
    print(f"base model ready at {folder} ({time.perf_counter() - started:.1f}s)", flush=True)
    if not replay.is_complete(settings.replay_cache):
        started = time.perf_counter()
        loaded = load_model(folder)
        replay.load_or_build(loaded.model, loaded.tokenizer, settings.replay_cache)
        print(f"replay answers ready at {settings.replay_cache} ({time.perf_counter() - started:.1f}s)")
    return 0


def _read_password() -> str:
    """Asked at the terminal, or the first line of standard input: never an argument,
    which every user of the machine could read in the process list."""
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def cmd_create_user(args: argparse.Namespace) -> int:
    from app.accounts.service import create_user
    from app.db import session_scope

    password = _read_password() if args.password else None
    with session_scope() as session:
        user, key = create_user(session, args.email, password, is_admin=args.admin or None)
        print(f"created user {user.id} <{user.email}>{' (admin)' if user.is_admin else ''}; API key:")
    print(key)
    return 0


def _candidate_count(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 1 <= value <= MAX_SELF_EDIT_K:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_SELF_EDIT_K}, got {text!r}")
    return value


def cmd_consolidate(args: argparse.Namespace) -> int:
    """Queue a consolidation for a user now (after changing settings, or as an
    experiment), or with ``--now`` run it in this process and print its outcome."""
    from sqlalchemy import select

    from app.db import session_scope
    from app.memory.tasks import enqueue_consolidation, run_consolidation
    from app.models import User

    with session_scope() as session:
        user = session.scalar(select(User).where(User.email == args.email.strip()))
        if user is None:
            print(f"no user {args.email!r}", file=sys.stderr)
            return 1
        user_id = user.id
    options: dict = {k: False for k, off in (("rehearse", args.no_rehearse), ("warm_start", args.fresh)) if off}
    if args.k is not None:
        options["k"] = args.k
    if args.now:
        print(run_consolidation(user_id, options))
        return 0
    enqueue_consolidation(user_id, options)
    print(f"queued a consolidation for user {user_id}{' with ' + str(options) if options else ''}")
    return 0


def web_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "app.web:app",
        "--host",
        host,
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        "5",
    ]


def worker_command() -> list[str]:
    # prefork with one child: the model is loaded once in that child, and the
    # hard time limit (which needs a separate process) is enforced.
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "app.worker:celery_app",
        "worker",
        "--loglevel=INFO",
        "--concurrency=1",
        "--pool=prefork",
        # the embedded beat: the recovery sweep every minute (app/worker.py)
        "--beat",
        "-Q",
        "consolidation",
        "--without-gossip",
        "--without-mingle",
    ]


def cmd_web(args: argparse.Namespace) -> int:
    _ensure_redis()
    os.execv(sys.executable, web_command(args.host, args.port))


def cmd_worker(_: argparse.Namespace) -> int:
    _ensure_redis()
    os.execv(sys.executable, worker_command())


def _vllm_server(settings):  # noqa: ANN001, ANN202 - Settings -> (url, Child)
    import socket

    from app.chat.service import CONTEXT_TOKENS
    from app.serving.vllm_engine import SERVER_ENV, server_command
    from app.supervisor import Child
    from training.lora import LORA_SHAPE
    from training.model import prepare_base_model

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = prepare_base_model(settings.base_model, settings.models_dir)
    import torch

    dtype = "auto" if torch.cuda.is_available() else "float32"
    command = server_command(folder, port, CONTEXT_TOKENS, LORA_SHAPE.rank, dtype)
    return f"http://127.0.0.1:{port}", Child("vllm", command, env={**os.environ, **SERVER_ENV})


def cmd_run(args: argparse.Namespace) -> int:
    from app.supervisor import Child, Supervisor

    settings = get_settings()
    children = [Child("worker", worker_command()), Child("web", web_command(args.host, args.port))]
    if settings.engine == "vllm" and not settings.vllm_url:
        # Our own vLLM server, supervised like the others; the web process finds it by the URL.
        try:
            vllm_url, server = _vllm_server(settings)
        except RuntimeError as exc:  # not installed
            print(f"sealchat: {exc}", file=sys.stderr)
            return 1
        os.environ["SEALCHAT_VLLM_URL"] = vllm_url
        children.insert(0, server)
    started_redis = _ensure_redis()
    cmd_migrate(args)
    cmd_prepare_model(args)
    if settings.engine == "vllm" and not settings.vllm_url:
        print(f"starting the vLLM server at {os.environ['SEALCHAT_VLLM_URL']} (ready in about a minute)", flush=True)
    supervisor = Supervisor(
        children,
        # The embedded Redis is ours to keep up too; an external one is its operator's.
        keep_alive=_ensure_redis if settings.redis_url is None else None,
    )
    supervisor.start()
    print(
        f"\nsealchat is starting at http://{args.host}:{args.port}/  (data in {settings.data_path})"
        "\nRegister there; the first account is the admin. Ctrl-C stops everything.\n",
        flush=True,
    )
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stopping.set())
    try:
        supervisor.run()
    except KeyboardInterrupt:
        pass
    finally:
        code = supervisor.stop()
        if started_redis:
            from app.embedded_redis import stop as stop_redis

            stop_redis(settings.redis_socket)
    return code


def main(argv: list[str] | None = None) -> int:
    # Everything sealchat writes (database, secret key, adapters, sockets) is its owner's alone.
    os.umask(0o077)
    _setup_logging()
    parser = argparse.ArgumentParser(prog="sealchat", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func in (("run", cmd_run), ("web", cmd_web)):
        p = sub.add_parser(name, help=f"start {'web + worker' if name == 'run' else 'the web process'}")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.set_defaults(func=func)
    sub.add_parser("worker", help="start a Celery worker").set_defaults(func=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("prepare-model", help="convert the base model once").set_defaults(func=cmd_prepare_model)
    p = sub.add_parser("create-user", help="create a user and print an API key on the last line")
    p.add_argument("email")
    p.add_argument("--admin", action="store_true")
    p.add_argument(
        "--password",
        action="store_true",
        help="set a password so the user can log in to the web UI (asked for, or read from standard input)",
    )
    p.set_defaults(func=cmd_create_user)
    p = sub.add_parser("consolidate", help="queue (or with --now, run) a consolidation of a user's facts")
    p.add_argument("email")
    p.add_argument("--no-rehearse", action="store_true", help="ablation: do not rehearse earlier facts")
    p.add_argument("--fresh", action="store_true", help="ablation: start from a fresh adapter, not the live one")
    p.add_argument(
        "--k", type=_candidate_count, default=None, help="self-edit candidates this run (default SEALCHAT_SELF_EDIT_K)"
    )
    p.add_argument("--now", action="store_true", help="run it in this process (no worker needed) and print what it did")
    p.set_defaults(func=cmd_consolidate)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
