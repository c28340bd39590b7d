"""The reply queue of a web process: bounded, refused at once when full, and every
slot given back, whichever way a reply ends."""

from __future__ import annotations

import threading

import pytest

from app.serving.admission import FIRST_GUESS_S, Admission, Busy


def test_the_queue_admits_up_to_its_slots_and_refuses_the_next_at_once():
    queue = Admission(slots=3)
    tickets = [queue.admit() for _ in range(3)]
    assert queue.in_flight == 3
    with pytest.raises(Busy) as refused:
        queue.admit()
    assert refused.value.status_code == 503
    assert refused.value.retry_after_s == FIRST_GUESS_S
    assert "busy" in refused.value.message
    tickets[0].release()
    tickets[0].release()  # idempotent: a slot is given back once
    assert queue.in_flight == 2
    queue.admit()
    assert queue.in_flight == 3


def test_retry_after_follows_the_measured_reply_time():
    queue = Admission(slots=1)
    for _ in range(30):
        queue.admit().release()  # replies that take no time
    with pytest.raises(Busy) as refused:
        queue.admit(), queue.admit()
    assert refused.value.retry_after_s == 1, "at least a second, and no longer than replies take"


def test_slots_are_counted_right_under_concurrent_use():
    queue = Admission(slots=8)
    admitted, refused = [], []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(200):
            try:
                ticket = queue.admit()
            except Busy:
                with lock:
                    refused.append(1)
                continue
            with lock:
                admitted.append(1)
                assert queue.in_flight <= 8
            ticket.release()

    threads = [threading.Thread(target=client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert queue.in_flight == 0
    assert len(admitted) + len(refused) == 16 * 200
