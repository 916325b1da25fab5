"""Mixture optimisers behind one interface, registered in the entry-point group ``curation.mixture_optimizers``.

An optimiser receives a ``MixtureProblem`` (domains, the prior mixture, the group-influence matrix when measured,
and a labeler for candidate mixtures when proxy training is available) and returns a ``MixtureSolution``.
Built-ins: ``tikmix_d`` (needs influence), ``tikmix_m`` (influence for the anchor, plus a labeler — falls back to
the influence objective as label), ``regmix`` (needs a labeler).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from curation.errors import CurationError
from curation.mixture.group_influence import GroupInfluence
from curation.mixture.labels import InfluenceLabel
from curation.mixture.regmix import RegMixConfig, regmix
from curation.mixture.tikmix_d import MixtureSolution, TikmixDConfig, tikmix_d
from curation.mixture.tikmix_m import Labeler, TikmixMConfig, tikmix_m


@dataclass(frozen=True)
class MixtureProblem:
    """What an optimiser may use."""

    domains: tuple[str, ...]
    prior: np.ndarray
    influence: GroupInfluence | None = None
    labeler: Labeler | None = None

    def require_influence(self, who: str) -> GroupInfluence:
        if self.influence is None:
            raise CurationError(f"mixture optimizer '{who}' needs the group-influence matrix")
        if tuple(self.influence.domains) != tuple(self.domains):
            raise CurationError(f"influence domains {self.influence.domains} differ from problem domains {self.domains}")
        return self.influence


class MixtureOptimizer(Protocol):
    """A registered mixture optimiser."""

    name: ClassVar[str]
    config_cls: ClassVar[type]
    config: Any

    def optimize(self, problem: MixtureProblem) -> MixtureSolution:
        """The next mixture (weights in ``problem.domains`` order, summing to 1)."""


class TikmixD:
    """TiKMiX-D: SLSQP on the group-influence objective."""

    name: ClassVar[str] = "tikmix_d"
    config_cls: ClassVar[type] = TikmixDConfig

    def __init__(self, config: TikmixDConfig | None = None) -> None:
        self.config = config or TikmixDConfig()

    def optimize(self, problem: MixtureProblem) -> MixtureSolution:
        gi = problem.require_influence(self.name)
        return tikmix_d(gi.matrix, problem.prior, self.config, tasks=gi.tasks)


class TikmixM:
    """TiKMiX-M: surrogate search around the TiKMiX-D solution."""

    name: ClassVar[str] = "tikmix_m"
    config_cls: ClassVar[type] = TikmixMConfig

    def __init__(self, config: TikmixMConfig | None = None) -> None:
        self.config = config or TikmixMConfig()

    def optimize(self, problem: MixtureProblem) -> MixtureSolution:
        gi = problem.require_influence(self.name)
        anchor = tikmix_d(gi.matrix, problem.prior, self.config.anchor, tasks=gi.tasks)
        labeler = problem.labeler or InfluenceLabel(gi.matrix, self.config.anchor, prior=problem.prior)
        sol = tikmix_m(anchor.weights, labeler, self.config)
        return MixtureSolution(sol.weights, sol.success and anchor.success, sol.message, sol.objective,
                               {**sol.extras, "anchor": anchor.weights.tolist()})


class RegMix:
    """RegMix baseline: random proxy mixtures + regression, no influence."""

    name: ClassVar[str] = "regmix"
    config_cls: ClassVar[type] = RegMixConfig

    def __init__(self, config: RegMixConfig | None = None) -> None:
        self.config = config or RegMixConfig()

    def optimize(self, problem: MixtureProblem) -> MixtureSolution:
        if problem.labeler is None:
            raise CurationError("mixture optimizer 'regmix' needs proxy-training labels (label: proxy)")
        return regmix(problem.prior, problem.labeler, self.config)
