"""Putting a converted base model folder in place (``training.model.move_into_place``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from training.model import move_into_place


def _folder(path: Path, marker: str) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(marker)
    return path


def test_a_conversion_moves_into_place(tmp_path: Path) -> None:
    tmp = _folder(tmp_path / ".convert-a", "mine")
    move_into_place(tmp, tmp_path / "model")
    assert (tmp_path / "model" / "config.json").read_text() == "mine"
    assert not tmp.exists()


def test_a_model_another_process_converted_first_is_kept(tmp_path: Path) -> None:
    """The web server and a worker started together both convert: the second
    rename fails on the first one's folder, which is kept, and nothing is left behind."""
    _folder(tmp_path / "model", "first")
    tmp = _folder(tmp_path / ".convert-b", "second")
    move_into_place(tmp, tmp_path / "model")
    assert (tmp_path / "model" / "config.json").read_text() == "first"
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_a_target_that_is_not_a_model_still_fails(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "stray.txt").write_text("not a model")
    tmp = _folder(tmp_path / ".convert-c", "mine")
    with pytest.raises(OSError):
        move_into_place(tmp, tmp_path / "model")
    assert not tmp.exists()
