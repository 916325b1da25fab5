"""Config dataclasses of the mixture stages (each equals the ``params.yaml`` block of the same name).

Closed loop without a DVC cycle: ``train_lm`` → ``optimize_mixture`` (reads the LM checkpoint, writes
``mixture.yaml``) → ``train_lm_mixture`` (declares ``mixture.yaml`` as a params file, continues training from
``train_lm``'s checkpoint on the new mixture). Editing or regenerating the mixture therefore re-runs exactly the
second training stage; making ``mixture.yaml`` a param of ``train_lm`` itself would close a cycle
(``train_lm`` → ``optimize_mixture`` → ``train_lm``) that DVC rejects. Repeated re-estimation inside one run is
``train_lm_mixture.reestimate_every``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.mixture.additivity import AdditivityConfig
from curation.mixture.group_influence import GroupInfluenceConfig
from curation.mixture.labels import ProxyConfig
from curation.mixture.regmix import RegMixConfig
from curation.mixture.tikmix_d import TikmixDConfig
from curation.mixture.tikmix_m import TikmixMConfig
from curation.models.gpt import ByteGPTConfig
from curation.training.loop import TrainConfig


@dataclass(frozen=True, kw_only=True)
class OptimizeMixtureConfig:
    """Measure group influence at the LM checkpoint and write the next domain mixture."""

    checkpoint: str = field(default="checkpoints/lm", metadata={"help": "checkpoint file, folder (last checkpoint) or models:/ URI"})
    train_data: str = field(default="data/corpus/train.parquet", metadata={"help": "training table with a domain column"})
    val_data: str = field(default="data/corpus/val.parquet", metadata={"help": "validation table with the task column"})
    influence: GroupInfluenceConfig = field(default_factory=GroupInfluenceConfig, metadata={"help": "group influence"})
    additivity: AdditivityConfig = field(default_factory=AdditivityConfig, metadata={"help": "check S·w against the measured influence of real mixed samples"})
    optimizer: str = field(default="tikmix_d", metadata={"help": "entry point in curation.mixture_optimizers"})
    prior: str = field(default="natural", metadata={"help": "mixture the checkpoint was trained on: natural, uniform or a mixture.yaml path"})
    label: str = field(default="influence", metadata={"help": "candidate labels for tikmix_m/regmix: influence or proxy (short training runs)"})
    proxy: ProxyConfig = field(default_factory=ProxyConfig, metadata={"help": "proxy runs (label: proxy)"})
    tikmix_d: TikmixDConfig = field(default_factory=TikmixDConfig, metadata={"help": "TiKMiX-D settings"})
    tikmix_m: TikmixMConfig = field(default_factory=TikmixMConfig, metadata={"help": "TiKMiX-M settings"})
    regmix: RegMixConfig = field(default_factory=RegMixConfig, metadata={"help": "RegMix settings"})
    out: str = field(default="mixture.yaml", metadata={"help": "mixture file to write"})
    report_dir: str = field(default="reports/optimize_mixture", metadata={"help": "influence table, plots, report"})

    def __post_init__(self) -> None:
        if self.label not in ("influence", "proxy"):
            raise ValueError(f"label must be influence or proxy, got {self.label!r}")


@dataclass(frozen=True, kw_only=True)
class TrainLMMixtureConfig:
    """Continue training the LM with domains sampled by ``mixture.yaml`` (the second TiKMiX stage)."""

    train_data: str = field(default="data/corpus/train.parquet", metadata={"help": "training table with a domain column"})
    val_data: str = field(default="data/corpus/val.parquet", metadata={"help": "validation table"})
    mixture: str = field(default="mixture.yaml", metadata={"help": "mixture file (domain weights)"})
    init_from: str = field(default="checkpoints/lm", metadata={"help": "checkpoint (file/folder/models:/) to continue from; empty = fresh model"})
    model: ByteGPTConfig = field(default_factory=ByteGPTConfig, metadata={"help": "architecture (used when init_from is empty)"})
    train: TrainConfig = field(default_factory=TrainConfig, metadata={"help": "optimisation; draws = epochs x table rows"})
    reestimate_every: int = field(default=0, metadata={"help": "steps between in-run TiKMiX-D re-estimations (0 = never)"})
    influence: GroupInfluenceConfig = field(default_factory=GroupInfluenceConfig, metadata={"help": "re-estimation influence"})
    tikmix_d: TikmixDConfig = field(default_factory=TikmixDConfig, metadata={"help": "re-estimation TiKMiX-D"})
    out_dir: str = field(default="checkpoints/lm_mixture", metadata={"help": "checkpoints, manifest, positions, mixtures"})

    def __post_init__(self) -> None:
        if self.reestimate_every < 0:
            raise ValueError("reestimate_every must be >= 0")
