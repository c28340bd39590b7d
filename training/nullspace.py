"""Keep a LoRA update out of the directions general text uses.

A LoRA layer adds ``B @ A @ x`` to a linear layer's output for input ``x``. If
``A`` is zero on the subspace that the layer's inputs span on general text, the
update leaves general answers as they were, and only inputs with a component
outside that subspace (the new fact's own wording, one hopes) are changed. This
is the null-space idea of AlphaEdit (arXiv 2410.02355), applied to LoRA's input
side: the base model's inputs to each adapted layer on general prompts give a
second-moment matrix; its leading eigenvectors, up to a share of the energy,
span the subspace that is projected out of ``A``.

Measured by ``benchmarks.update_scale --energies`` and not adopted: a fact's
question is read in much the same directions as general text, so recall went
with the locality gained (docs/decisions/017).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from training.chat import ChatMessage, encode_prompt, with_system_prompt
from training.replay import ReplayItem


@dataclass(frozen=True)
class InputSpectrum:
    """Eigen-decomposition of one layer's input second moment on general text,
    largest eigenvalue first."""

    values: torch.Tensor  # (d,)
    vectors: torch.Tensor  # (d, d), columns

    def basis(self, energy: float) -> torch.Tensor:
        """The fewest leading eigenvectors holding ``energy`` of the total (d x k)."""
        share = torch.cumsum(self.values, 0) / self.values.sum()
        k = int(torch.searchsorted(share, torch.tensor(energy, dtype=share.dtype)).item()) + 1
        return self.vectors[:, : min(k, len(self.values))]


@torch.no_grad()
def input_spectra(model, tokenizer, items: Sequence[ReplayItem], modules: Sequence[str]) -> dict[str, InputSpectrum]:
    """Per adapted layer whose name ends in one of ``modules``: the spectrum of its
    inputs over every token of ``items`` (prompt in the chat template, then the
    base answer). ``model`` should be the plain base model (no adapter active)."""
    sums: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name):
        def record(_module, args):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double()
            sums[name] = sums.get(name, 0) + x.T @ x

        return record

    for name, module in model.named_modules():
        base = getattr(module, "base_layer", None)
        if base is not None and name.rsplit(".", 1)[-1] in modules:
            handles.append(base.register_forward_pre_hook(hook(name)))
    try:
        for item in items:
            ids = encode_prompt(tokenizer, with_system_prompt([ChatMessage("user", item.prompt)]))
            ids = ids + tokenizer.encode(item.answer.strip(), add_special_tokens=False)
            model(input_ids=torch.tensor([ids], device=model.device))
    finally:
        for handle in handles:
            handle.remove()
    spectra = {}
    for name, moment in sums.items():
        values, vectors = torch.linalg.eigh(moment)
        spectra[name] = InputSpectrum(values.flip(0).clamp_min(0).float(), vectors.flip(1).float())
    return spectra


@torch.no_grad()
def project_out(model, adapter: str, spectra: dict[str, InputSpectrum], energy: float) -> dict[str, int]:
    """Remove from adapter ``adapter``'s LoRA A matrices the leading input subspace
    (``energy`` of it) of each layer in ``spectra``, in place. Returns the number of
    directions removed per layer."""
    removed = {}
    for name, module in model.named_modules():
        if name not in spectra or adapter not in getattr(module, "lora_A", {}):
            continue
        weight = module.lora_A[adapter].weight  # (r, d)
        basis = spectra[name].basis(energy).to(weight.dtype)
        weight.sub_((weight @ basis) @ basis.T)
        removed[name] = basis.shape[1]
    return removed
