"""One PEFT wrapper per process, holding any number of named LoRA adapters.

PEFT must wrap a base model only once; wrapping again nests LoRA layers. An
:class:`AdapterHost` wraps the base at start-up with an inert, never-trained
adapter (``idle``; LoRA B starts at zero, so it changes nothing) and then loads,
adds, activates and deletes named adapters through PEFT's own machinery
(``load_adapter``, ``add_adapter``, ``set_adapter``, ``delete_adapter``). The
base model alone is used through ``disable_adapter()``.

Not thread-safe: callers serialise access (the serving engine holds a lock).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel, get_peft_model

from training.lora import LORA_SHAPE, LoraShape
from training.model import LoadedModel

IDLE_ADAPTER = "idle"
WEIGHTS_FILE = "adapter_model.safetensors"


class AdapterHost:
    def __init__(self, loaded: LoadedModel, shape: LoraShape = LORA_SHAPE) -> None:
        """``shape``: the geometry of the adapters this host adds (the project's own
        unless a benchmark compares another)."""
        self.loaded = loaded
        self.tokenizer = loaded.tokenizer
        self.shape = shape
        self.peft: PeftModel = get_peft_model(loaded.model, shape.peft_config(), adapter_name=IDLE_ADAPTER)
        self.peft.eval()
        self._base_memo: dict[Hashable, Any] = {}
        # Adapter name -> its LoRA B matrices before the first ``rescale``.
        self._unscaled: dict[str, dict[str, torch.Tensor]] = {}

    @property
    def names(self) -> set[str]:
        return set(self.peft.peft_config) - {IDLE_ADAPTER}

    def load(self, name: str, path: Path, trainable: bool = False) -> None:
        """Load an adapter directory under ``name`` (no-op if already loaded)."""
        if name in self.peft.peft_config:
            return
        self.peft.load_adapter(str(path), adapter_name=name, is_trainable=trainable)

    def add_fresh(self, name: str) -> None:
        """Add a new, untrained adapter with the host's shape."""
        self.peft.add_adapter(name, self.shape.peft_config())

    def unload(self, name: str) -> None:
        if name == IDLE_ADAPTER or name not in self.peft.peft_config:
            return
        if self.peft.active_adapter == name:
            self.peft.set_adapter(IDLE_ADAPTER)
        self.peft.delete_adapter(name)
        self._unscaled.pop(name, None)

    def make_trainable(self, name: str) -> None:
        """Activate ``name`` with only its LoRA weights requiring grad."""
        self.peft.set_adapter(name)
        for param_name, param in self.peft.named_parameters():
            param.requires_grad = f".{name}." in param_name and "lora_" in param_name

    @torch.no_grad()
    def rescale(self, name: str, factor: float, per_module: Mapping[str, float] | None = None) -> None:
        """Set adapter ``name``'s update to its value when first rescaled times
        ``factor``, or times ``per_module[m]`` in the LoRA layers of target module
        ``m`` ("q_proj"): every LoRA B matrix is scaled in place, so a saved copy is
        an ordinary adapter of the same shape. Calls do not compound."""
        if name == IDLE_ADAPTER or name not in self.peft.peft_config:
            raise KeyError(f"adapter {name!r} is not loaded (loaded: {sorted(self.names)})")
        per_module = per_module or {}
        marker = f".lora_B.{name}."
        originals = self._unscaled.setdefault(name, {})
        for param_name, param in self.peft.named_parameters():
            if marker not in param_name:
                continue
            if param_name not in originals:
                originals[param_name] = param.detach().clone()
            module = param_name.split(".lora_B.")[0].rsplit(".", 1)[-1]
            param.copy_(originals[param_name] * per_module.get(module, factor))

    def save(self, name: str, directory: Path) -> Path:
        """Write adapter ``name`` as a standalone PEFT directory; return the weights file."""
        self.peft.save_pretrained(str(directory), selected_adapters=[name])
        # save_pretrained nests non-default adapters in a sub-folder; flatten it
        # so every version directory loads the same way.
        nested = directory / name
        if nested.is_dir():
            for item in nested.iterdir():
                item.replace(directory / item.name)
            nested.rmdir()
        return directory / WEIGHTS_FILE

    def base_memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per process for ``key``: for what the base model alone
        gives on fixed inputs (its weights never change), such as its answer
        log-probabilities on the locality prompts, which every consolidation compares
        against (about 5 s of a 135M model on 2 CPU cores, and 160 MB kept)."""
        if key not in self._base_memo:
            self._base_memo[key] = compute()
        return self._base_memo[key]

    @property
    def replay_hidden_cache(self) -> dict:
        """Where ``train_lora`` keeps the base model's hidden states on replay examples."""
        return self.base_memo("replay_hidden", dict)

    @contextlib.contextmanager
    def using(self, name: str | None) -> Iterator[torch.nn.Module]:
        """Run with adapter ``name`` active, or the plain base model for ``None``."""
        if name is None:
            with self.peft.disable_adapter():
                yield self.peft
            return
        if name not in self.peft.peft_config:
            raise KeyError(f"adapter {name!r} is not loaded (loaded: {sorted(self.names)})")
        self.peft.set_adapter(name)
        yield self.peft


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
