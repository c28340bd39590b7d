"""Routing quality on questions no rule names: the test set, scored as the benchmark scores it.

The test set's facts and questions were written before the router and are never
used to fit or tune it; these floors guard what ``python -m benchmarks.routing``
measured (docs/BENCHMARKS.md) against a change that silently loses it.
"""

from __future__ import annotations

from benchmarks.routing import DEV_SETS, evaluate
from training.memory.fact_sets import OBLIQUE_FACTS, TEST_FACTS, load_facts
from training.routing.router import Router, dev_router


def test_test_set_questions_reach_their_group_and_general_prompts_stay_on_the_base_model(router: Router):
    result = evaluate(router, load_facts(TEST_FACTS), taught=30)
    assert result["taught_right_group"] >= 0.8, result
    assert result["right_group_of_routed"] == 1.0, "a routed question never reaches another group"
    assert result["untaught_to_adapter"] <= 0.25, result
    assert result["general_to_adapter"] <= 0.02, result["general_routed_to_adapter"]
    assert result["to_overview"] == 0.0, "no question about one fact, and no general prompt, asks for the list"


def test_far_worded_dev_questions_reach_their_group_with_a_router_fitted_without_them(router: Router):
    others = [path for name, path in DEV_SETS.items() if name != "dev: reworded"]
    result = evaluate(dev_router(router.embedder, others), load_facts(DEV_SETS["dev: reworded"]), taught=30)
    assert result["taught_right_group"] >= 0.85, result
    assert result["general_to_adapter"] <= 0.02, result["general_routed_to_adapter"]


def test_oblique_dev_questions_are_measured_and_never_reach_a_wrong_group_often(router: Router):
    """Questions worded far from their facts (never fitted on): the product's router
    finds a third of them nowhere (docs/BENCHMARKS.md); this floor guards the rest."""
    result = evaluate(router, load_facts(OBLIQUE_FACTS), taught=30)
    assert result["taught_right_group"] >= 0.55, result
    assert result["right_group_of_routed"] >= 0.9, result
    assert result["general_to_adapter"] <= 0.04, result["general_routed_to_adapter"]
