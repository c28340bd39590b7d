"""The self-edit policy: a LoRA adapter, apart from users' memory adapters, that writes self-edits.

SEAL's outer loop trains the model to write better study notes. Here that
skill lives in its own adapter on the base model, used only while writing
self-edits (``host.using(policy.name)``); users' memory adapters are trained on
the base model as before. ``None`` as a policy means the untrained base model.

A policy version is an immutable directory (PEFT adapter files plus
``manifest.json``) that appears atomically under ``<store>/v<N>``. Which version
is live is not decided here: the web app keeps that pointer in its database;
the standalone CLI keeps it in ``<store>/active.json`` (:class:`PolicyStore`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from training.adapters import WEIGHTS_FILE, AdapterHost, sha256_file

MANIFEST_FILE = "manifest.json"
POINTER_FILE = "active.json"
BASE_LABEL = "base"  # the untrained base model writing self-edits


@dataclass(frozen=True)
class PolicyRef:
    """A policy version as the trainer sees it: a unique adapter name and its directory."""

    name: str  # "policy-v3"
    path: Path

    @classmethod
    def from_dir(cls, path: Path) -> PolicyRef:
        manifest = read_manifest(path)
        return cls(manifest["name"], path)


def label(policy: PolicyRef | None) -> str:
    """How a self-edit records who wrote it: a policy version name, or ``base``."""
    return policy.name if policy else BASE_LABEL


def activate(host: AdapterHost, policy: PolicyRef | None) -> str | None:
    """Load ``policy`` into ``host`` (once) and return the name to pass to ``host.using``."""
    if policy is None:
        return None
    host.load(policy.name, policy.path)
    return policy.name


def read_manifest(path: Path) -> dict:
    file = path / MANIFEST_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path} is not a policy version: {MANIFEST_FILE} is missing")
    return json.loads(file.read_text())


def publish_version(trained_dir: Path, target: Path, manifest: dict) -> PolicyRef:
    """Copy a trained adapter directory to ``target`` with its manifest, atomically.

    The copy (not a move) leaves a round's own files intact, so a crash after
    publishing still lets the round be re-run and resumed.
    """
    if target.exists():
        raise FileExistsError(f"policy version directory already exists: {target}")
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(trained_dir, tmp)
    try:
        full = {**manifest, "name": f"policy-{target.name}", "weights_sha256": sha256_file(tmp / WEIGHTS_FILE)}
        (tmp / MANIFEST_FILE).write_text(json.dumps(full, indent=1))
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PolicyRef(full["name"], target)


class PolicyStore:
    """Policy versions in one directory, with a file pointer for use without the web app."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def versions(self) -> list[PolicyRef]:
        found = [p for p in self.root.glob("v*") if p.name[1:].isdigit() and (p / MANIFEST_FILE).is_file()]
        return [PolicyRef.from_dir(p) for p in sorted(found, key=lambda p: int(p.name[1:]))]

    def next_number(self, at_least: int = 1) -> int:
        """A version number never used: directories (finished or not) and rounds count."""
        used = [int(p.name[1:]) for p in self.root.glob("v*") if p.name[1:].isdigit()]
        for config in self.root.glob("rounds/*/config.json"):
            used.append(int(json.loads(config.read_text()).get("version", 0)))
        return max([at_least - 1, *used]) + 1

    def version_dir(self, number: int) -> Path:
        return self.root / f"v{number}"

    def get(self, name: str) -> PolicyRef:
        for ref in self.versions():
            if ref.name == name or ref.path.name == name:
                return ref
        raise KeyError(f"no policy version {name!r} in {self.root} (have: {[r.name for r in self.versions()]})")

    def active(self) -> PolicyRef | None:
        pointer = self.root / POINTER_FILE
        if not pointer.is_file():
            return None
        name = json.loads(pointer.read_text()).get("active")
        return self.get(name) if name else None

    def promote(self, name: str | None) -> PolicyRef | None:
        """Point at version ``name`` (``None``: back to the untrained base model)."""
        ref = self.get(name) if name else None
        pointer = self.root / POINTER_FILE
        history = json.loads(pointer.read_text()).get("history", []) if pointer.is_file() else []
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = pointer.with_suffix(".tmp")
        tmp.write_text(json.dumps({"active": ref.name if ref else None, "history": [*history, label(ref)]}))
        os.replace(tmp, pointer)
        return ref

    def rollback(self) -> PolicyRef | None:
        """Back to the version the active one was trained from."""
        current = self.active()
        if current is None:
            raise ValueError("the untrained base model is already the self-edit policy")
        parent = read_manifest(current.path).get("parent")
        return self.promote(parent if parent and parent != BASE_LABEL else None)
