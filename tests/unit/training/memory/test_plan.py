"""The planning rules one consolidation follows (``training.memory.plan``), shared by the worker and the benchmark."""

from __future__ import annotations

import pytest

from training.memory.plan import (
    DEFAULT_GROUP_SIZE,
    GROUP_RETRY_ATTEMPTS,
    PendingFact,
    next_group,
    place_facts,
    plan_run,
)


def test_a_first_fact_opens_a_fresh_group():
    plan = plan_run({}, [PendingFact(1)], [], size=5)
    assert (plan.group, plan.new, plan.kept, plan.removed, plan.mode, plan.retry) == (0, (1,), (), (), "fresh", False)


def test_a_new_fact_joins_the_group_with_room_warm_started():
    plan = plan_run({0: [1, 2]}, [PendingFact(3)], [], size=5)
    assert (plan.group, plan.new, plan.kept, plan.mode) == (0, (3,), (1, 2), "warm start")
    assert plan.warm
    assert plan_run({0: [1, 2]}, [PendingFact(3)], [], size=5, warm_start=False).mode == "fresh"


def test_facts_for_other_groups_wait_for_their_run():
    plan = plan_run({0: [1, 2]}, [PendingFact(3), PendingFact(4)], [], size=3)
    assert (plan.group, plan.new, plan.waiting) == (0, (3,), (4,))


def test_a_forget_rebuilds_the_group_on_the_facts_it_keeps():
    plan = plan_run({0: [1, 2, 3], 1: [4]}, [], [2], size=3)
    assert (plan.group, plan.kept, plan.removed, plan.mode) == (0, (1, 3), (2,), "rebuild")
    # A fact no live group holds is not removed by any run.
    assert plan_run({0: [1]}, [], [9], size=3) is None


def test_a_correction_joins_the_group_of_the_fact_it_replaces():
    plan = plan_run({0: [1, 2], 1: [3, 4]}, [PendingFact(9, replaces=3)], [3], size=2)
    assert (plan.group, plan.new, plan.kept, plan.removed, plan.mode) == (1, (9,), (4,), (3,), "rebuild")


def test_a_refused_fact_is_retried_in_its_group_then_in_a_new_one():
    once = plan_run({0: [1, 2]}, [PendingFact(3, attempts=1)], [], size=5)
    assert (once.group, once.mode, once.retry) == (0, "warm start", True)
    again = plan_run({0: [1, 2]}, [PendingFact(3, attempts=GROUP_RETRY_ATTEMPTS)], [], size=5)
    assert (again.group, again.mode, again.kept) == (1, "fresh", ())


def test_group_size_zero_keeps_every_fact_in_one_group():
    plan = plan_run({0: list(range(1, 40))}, [PendingFact(40)], [], size=0)
    assert (plan.group, plan.mode) == (0, "warm start")


def test_nothing_to_do_plans_nothing():
    assert plan_run({0: [1]}, [], [], size=5) is None


def test_new_facts_fill_the_newest_group_then_open_another():
    assert place_facts({}, [1, 2, 3], size=2) == {0: [1, 2], 1: [3]}
    assert place_facts({0: [1, 2], 1: [3]}, [4, 5], size=2) == {1: [4], 2: [5]}


def test_a_correction_is_placed_in_the_group_of_the_fact_it_replaces():
    # Fact 9 replaces fact 2 (already taken out of group 0): group 0 is rebuilt with
    # the new value, so no other group still answers with the old one.
    assert place_facts({0: [1], 1: [3, 4]}, [9, 10], size=2, home={9: 0}) == {0: [9], 2: [10]}


def test_the_product_and_the_benchmarks_use_one_group_size():
    from app.settings import Settings

    assert Settings.model_fields["fact_group_size"].default == DEFAULT_GROUP_SIZE == 5


def test_a_group_holds_at_least_one_fact():
    with pytest.raises(ValueError, match="size=0"):
        place_facts({}, [1], size=0)


def test_a_run_trains_the_lowest_touched_group_and_the_rest_waits():
    # Group 1 has room for one: fact 5 joins it, fact 6 opens group 2 and waits.
    assert next_group({0: [1, 2], 1: [3]}, [5, 6], {}, size=2) == (1, [5])
    # A forget in group 0 goes before new facts in group 1.
    assert next_group({0: [1], 1: [3]}, [5], {2: 0}, size=2) == (0, [])
    assert next_group({0: [1, 2]}, [], {}, size=2) is None


def test_a_fact_refused_again_and_again_opens_a_new_group():
    # Fact 7 keeps pushing group 1's only fact out: it starts group 2, and the
    # next new fact fills that group rather than group 1.
    assert next_group({0: [1, 2], 1: [3]}, [7], {}, size=2, fresh=[7]) == (2, [7])
    assert place_facts({0: [1, 2], 1: [3], 2: [7]}, [8], size=2) == {2: [8]}
    # A correction goes home even when it was refused before.
    assert next_group({0: [1], 1: [3]}, [9], {2: 0}, size=2, home={9: 0}, fresh=[9]) == (0, [9])
