"""The plain-torch MLP that peer workers rebuild from the orchestrator's safetensors (they run in the peers' venvs,
without curation installed, so they import this file from their own folder)."""

from __future__ import annotations

from torch import nn


def build_mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given widths with ReLU between them (state-dict keys match ``curation``'s MLP)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
