"""A tiny ReST-EM round on the real model, end to end on CPU (2 passages, K=2).

The two training passages are made up (the base model cannot know them), so
training on them has a positive gain and a policy is trained. The held-out
passage's answer appears nowhere in it, so no policy can raise that score: the
round must write the new version with its metrics and must not promote it.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, assert_base_unchanged, base_snapshot
from training.adapters import AdapterHost
from training.model import load_model
from training.policy.improve import build_parser, run_rounds
from training.replay import load_or_build
from training.seal.policy import PolicyStore, read_manifest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def host(base_model_folder):
    return AdapterHost(load_model(base_model_folder))


def test_a_tiny_round_writes_a_version_and_does_not_promote_what_did_not_improve(host, tmp_path):
    with host.using(None):
        replay = load_or_build(host.peft, host.tokenizer, ROOT / ".cache" / "replay" / "test-base-answers.json")
    store = PolicyStore(tmp_path / "policy")
    args = build_parser().parse_args(
        [
            "--store", str(store.root),
            "--passages-file", str(DATA / "rest_em_train.json"),
            "--eval-passages-file", str(DATA / "rest_em_heldout.json"),
            "--n", "2", "--eval-n", "1", "--k", "2",
            "--max-steps", "12", "--max-new-tokens", "96", "--policy-max-steps", "8",
        ]
    )  # fmt: skip
    before = base_snapshot(host)

    [outcome] = run_rounds(host, store, args, replay["replay"])

    assert_base_unchanged(host, before)
    samples = [json.loads(line) for line in (store.root / "rounds" / "r1" / "samples.jsonl").read_text().splitlines()]
    assert [len(row["samples"]) for row in samples] == [2, 2]
    assert outcome.metrics["n_kept"] >= 1, "training on an unknown passage should teach something"
    kept = {(k["input_id"], k["index"]) for k in outcome.metrics["kept"]}
    for row in samples:  # the kept sample is the input's best, and only a positive gain is kept
        best = max(row["samples"], key=lambda s: (s["gain"], -s["index"]))
        assert ((row["input_id"], best["index"]) in kept) == (best["gain"] > 0)

    assert [v.name for v in store.versions()] == ["policy-v1"]
    manifest = read_manifest(store.version_dir(1))
    metrics = manifest["metrics"]
    assert manifest["parent"] == "base" and manifest["weights_sha256"]
    assert metrics["eval_before"] == metrics["eval_after"] == 0.0
    assert metrics["improved"] is False and "does not beat" in metrics["reason"]
    assert metrics["cpu_hours"] > 0 and metrics["seconds"]["total"] > 0 and metrics["policy_losses"]
    assert store.active() is None, "a policy that did not improve must not be promoted"
