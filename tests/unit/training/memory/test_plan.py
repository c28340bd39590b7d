"""The planning rules one consolidation follows (``training.memory.plan``), shared by the worker and the benchmark."""

from __future__ import annotations

from training.memory.plan import GROUP_RETRY_ATTEMPTS, PendingFact, plan_run


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
