"""Redis key names of memory work, shared by the tasks and the consolidation."""

from __future__ import annotations


def user_lock_name(user_id: int) -> str:
    """The lock one consolidation of the user holds (``HeartbeatLock``)."""
    return f"sealchat:consolidate:{user_id}"


def queued_mark(user_id: int) -> str:
    """Set while a run for the user waits in the queue: the recovery sweep leaves them be."""
    return f"sealchat:queued:{user_id}"
