"""The Celery application: consolidation tasks on their own queue.

Long jobs: prefetch 1, late acks (a task whose worker dies is redelivered),
a hard time limit, and a Redis visibility timeout longer than that limit so a
running task is not handed to a second worker.
"""

from __future__ import annotations

from celery import Celery

from app.settings import get_settings

settings = get_settings()
RECOVERY_INTERVAL_S = 60.0

# The task modules register their tasks and their start-up recovery (``worker_ready``).
celery_app = Celery("sealchat", broker=settings.celery_broker_url, include=["app.memory.tasks", "app.policy.tasks"])
celery_app.conf.update(
    task_default_queue="consolidation",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    task_time_limit=settings.task_time_limit_s,
    task_soft_time_limit=settings.task_time_limit_s - 30,
    broker_transport_options={"visibility_timeout": settings.task_time_limit_s * 2},
    broker_connection_retry_on_startup=True,
    # The root logger at the worker's --loglevel, so the app's own logs (training, recovery) show.
    worker_hijack_root_logger=True,
    # The recovery sweep (app.memory.tasks.recover_unfinished_task), run by the
    # worker's embedded beat (`celery worker -B`).
    beat_schedule={"recover-unfinished": {"task": "sealchat.recover_unfinished", "schedule": RECOVERY_INTERVAL_S}},
    beat_schedule_filename=str(settings.data_path / "celerybeat-schedule"),
)

if settings.redis_url is None:
    from app.embedded_redis import ensure_running

    ensure_running(settings.redis_socket)
