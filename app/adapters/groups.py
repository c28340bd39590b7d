"""A version's fact groups: one LoRA adapter per group, in one immutable directory.

A user's facts are split into groups of at most ``SEALCHAT_FACT_GROUP_SIZE``
(``training/routing/groups.py``); a version directory holds one adapter sub-directory per
group, ``g<k>/``, and a consolidation trains only the group it touches. The
other groups of the new version are hard links to the previous version's files:
no copy, no retraining, and their weights are bit for bit what was live.

A version from before groups (``AdapterVersion.groups`` is None) is one adapter
in its directory, served as group 0 holding all its facts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from app.models import AdapterVersion

LAYOUT_FILE = "groups.json"


@dataclass(frozen=True)
class Group:
    """One group of a version: its facts and the adapter that holds them."""

    index: int
    fact_ids: tuple[int, ...]
    path: Path  # the adapter directory
    built: int  # the version number that trained it (its loaded name's suffix)
    sha256: str
    locality_changed: tuple[str, ...] = field(default=())  # general prompts it answers unlike the base

    def adapter_name(self, user_id: int) -> str:
        """The name serving loads it under: the same in every version that links it,
        so a promotion loads only the group that changed."""
        return f"u{user_id}-g{self.index}-v{self.built}"

    def to_json(self) -> dict:
        return {
            "fact_ids": list(self.fact_ids),
            "dir": self.path.name,
            "built": self.built,
            "sha256": self.sha256,
            "locality_changed": list(self.locality_changed),
        }


def version_groups(version: AdapterVersion | None) -> dict[int, Group]:
    """The groups of ``version`` (none for no version)."""
    if version is None:
        return {}
    root = Path(version.path)
    if version.groups is None:
        changed = tuple((version.metrics or {}).get("locality_changed") or ())
        return {0: Group(0, tuple(version.fact_ids or ()), root, version.version, version.weights_sha256, changed)}
    return {
        int(k): Group(
            int(k),
            tuple(g["fact_ids"]),
            root / g["dir"],
            int(g["built"]),
            g["sha256"],
            tuple(g.get("locality_changed") or ()),
        )
        for k, g in version.groups.items()
    }


def groups_json(groups: Mapping[int, Group]) -> dict:
    return {str(k): g.to_json() for k, g in sorted(groups.items())}


def combined_sha256(groups: Mapping[int, Group]) -> str:
    """A version's identity: the digest of its groups' weight digests, in order."""
    digest = hashlib.sha256()
    for k, group in sorted(groups.items()):
        digest.update(f"g{k}:{group.sha256}\n".encode())
    return digest.hexdigest()


def build_dir(final: Path) -> Path:
    """Where a version is assembled before it appears (atomically) at ``final``."""
    return final.with_name(f".build-{final.name}")


def assemble(final: Path, groups: Mapping[int, Group]) -> dict[int, Group]:
    """Make ``final`` appear with one sub-directory per group, atomically.

    A group already in ``build_dir(final)`` (the one just trained there) stays;
    every other group is hard-linked from its current directory (a copy where the
    file system cannot link). Returns the groups with their paths under ``final``.
    """
    work = build_dir(final)
    work.mkdir(parents=True, exist_ok=True)
    placed = {}
    for k, group in sorted(groups.items()):
        target = work / f"g{k}"
        if group.path.resolve() != target.resolve():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(group.path, target, copy_function=_link_or_copy)
        placed[k] = replace(group, path=final / f"g{k}")
    layout = {"groups": groups_json(placed), "weights_sha256": combined_sha256(placed)}
    (work / LAYOUT_FILE).write_text(json.dumps(layout, indent=1))
    os.replace(work, final)
    return placed


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def size_bytes(groups: Mapping[int, Group]) -> int:
    """The weights a version serves (linked groups count once per version)."""
    return sum(f.stat().st_size for g in groups.values() for f in g.path.glob("*.safetensors"))
