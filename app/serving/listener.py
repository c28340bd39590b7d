"""Hot-swap on promotion: a thread in the web process that listens on Redis pub/sub.

Each message names a user whose active adapter changed; the listener reads the
pointer from the database and preloads that version, so the user's next request
is already routed to it. Requests also re-read the pointer, so a missed message
only costs the load time on the next request.
"""

from __future__ import annotations

import json
import logging
import threading

from app.accounts import repository as users
from app.adapters.service import active_ref
from app.db import session_scope
from app.redis_client import ADAPTER_CHANNEL, get_redis
from app.serving.engine import Engine

log = logging.getLogger(__name__)


class PromotionListener(threading.Thread):
    def __init__(self, engine: Engine) -> None:
        super().__init__(name="promotion-listener", daemon=True)
        self.engine = engine
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                pubsub = get_redis().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(ADAPTER_CHANNEL)
                while not self.stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message:
                        self.handle(message["data"])
            except Exception:
                log.exception("promotion listener lost Redis; reconnecting")
                self.stopping.wait(2.0)

    def handle(self, data: str) -> None:
        user_id = int(json.loads(data)["user_id"])
        with session_scope() as session:
            user = users.get(session, user_id)
            if user is None:
                return
            ref = active_ref(session, user)
        self.engine.preload(user_id, ref)
