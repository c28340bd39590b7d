"""A version's fact groups on disk: a new version links the groups it did not
train, appears whole or not at all, and a version from before groups is one group."""

from __future__ import annotations

import json

from app.adapters.groups import Group, assemble, build_dir, combined_sha256, version_groups
from app.adapters.service import ref_for
from app.models import AdapterVersion


def _adapter(folder, weights: bytes):
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").write_bytes(weights)
    (folder / "adapter_config.json").write_text("{}")
    return folder


def test_a_new_version_links_its_unchanged_groups_and_appears_at_once(tmp_path):
    v1 = tmp_path / "v1"
    parent = {
        0: Group(0, (1, 2), _adapter(v1 / "g0", b"zero"), 1, "a" * 64, ("Name a fruit.",)),
        1: Group(1, (3,), _adapter(v1 / "g1", b"one"), 1, "b" * 64),
    }
    final = tmp_path / "v2"
    trained = Group(1, (3, 4), _adapter(build_dir(final) / "g1", b"one, retrained"), 2, "c" * 64)
    assert not final.exists()

    groups = assemble(final, {0: parent[0], 1: trained})

    assert not build_dir(final).exists() and final.is_dir()
    assert groups[0].path == final / "g0" and groups[0].built == 1
    linked, source = final / "g0" / "adapter_model.safetensors", v1 / "g0" / "adapter_model.safetensors"
    assert linked.stat().st_ino == source.stat().st_ino, "an unchanged group is a hard link, not a copy"
    assert (final / "g1" / "adapter_model.safetensors").read_bytes() == b"one, retrained"
    assert (v1 / "g1" / "adapter_model.safetensors").read_bytes() == b"one", "the parent is untouched"
    layout = json.loads((final / "groups.json").read_text())
    assert layout["groups"]["1"]["fact_ids"] == [3, 4] and layout["weights_sha256"] == combined_sha256(groups)
    assert combined_sha256(groups) != combined_sha256(parent)


def test_a_version_reads_back_its_groups_and_serving_names_them_by_the_version_that_trained_them(tmp_path):
    version = AdapterVersion(
        user_id=7,
        version=3,
        name="u7-v3",
        path=str(tmp_path / "v3"),
        fact_ids=[1, 2, 3],
        weights_sha256="d" * 64,
        groups={
            "0": {"fact_ids": [1, 2], "dir": "g0", "built": 1, "sha256": "a" * 64, "locality_changed": []},
            "1": {"fact_ids": [3], "dir": "g1", "built": 3, "sha256": "b" * 64, "locality_changed": ["Hi"]},
        },
    )
    groups = version_groups(version)
    assert groups[1].path == tmp_path / "v3" / "g1" and groups[1].locality_changed == ("Hi",)
    ref = ref_for(version, {1: "My cat is Tom.", 2: "I live in Oslo.", 3: "I play chess."})
    assert [(p.index, p.name, p.facts) for p in ref.parts] == [
        (0, "u7-g0-v1", ("My cat is Tom.", "I live in Oslo.")),
        (1, "u7-g1-v3", ("I play chess.",)),
    ]


def test_a_version_from_before_groups_is_one_group_in_its_own_directory(tmp_path):
    version = AdapterVersion(
        user_id=7, version=2, name="u7-v2", path=str(tmp_path), fact_ids=[4, 5], weights_sha256="e" * 64, metrics={}
    )
    assert version_groups(version) == {0: Group(0, (4, 5), tmp_path, 2, "e" * 64)}
    assert version_groups(None) == {}
