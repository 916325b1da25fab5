"""Config dataclasses of the provenance stages (``params.yaml`` blocks ``provenance_suspects``, ``test_provenance``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from curation.models.gpt import ByteGPTConfig
from curation.provenance.retrain import OrderedTrainConfig


@dataclass(frozen=True, kw_only=True)
class ProvenanceSuspectsConfig:
    """Demo inputs of the provenance test: a suspect derived from our model, an independent model, a reference."""

    train_data: str = field(default="data/corpus/train.parquet", metadata={"help": "our training table (text)"})
    other_data: str = field(default="data/corpus/val.parquet", metadata={"help": "other text the derived suspect is fine-tuned on"})
    base_checkpoint: str = field(
        default="checkpoints/lm",
        metadata={"help": "our model to derive from (a checkpoint file, or a training folder = its final checkpoint)"},
    )
    derive_rows: int = field(default=160, metadata={"help": "rows of other_data used for continued training"})
    derive: OrderedTrainConfig = field(
        default_factory=lambda: OrderedTrainConfig(learning_rate=3e-4, batch_size=16),
        metadata={"help": "continued-training settings of the derived suspect"},
    )
    small_model: ByteGPTConfig = field(
        default_factory=lambda: ByteGPTConfig(n_layer=2, n_head=2, d_model=64, block_size=128),
        metadata={"help": "architecture of the reference and the independent model"},
    )
    small_train: OrderedTrainConfig = field(
        default_factory=lambda: OrderedTrainConfig(learning_rate=3e-3, batch_size=32),
        metadata={"help": "training of the reference and the independent model (one epoch, own shuffle)"},
    )
    reference_seed: int = field(default=1, metadata={"help": "seed (init and order) of the reference model"})
    independent_seed: int = field(default=2, metadata={"help": "seed (init and order) of the independent suspect"})
    out_dir: str = field(default="checkpoints/provenance", metadata={"help": "derived/independent/reference checkpoints"})

    def __post_init__(self) -> None:
        if self.derive_rows < 1:
            raise ValueError("derive_rows must be positive")
        if self.reference_seed == self.independent_seed:
            raise ValueError("reference_seed and independent_seed must differ (the two models must be independent)")


@dataclass(frozen=True, kw_only=True)
class TestProvenanceConfig:
    """Palimpsest query test of suspect models against our training run."""

    __test__ = False  # not a pytest test class despite its name

    train_data: str = field(default="data/corpus/train.parquet", metadata={"help": "our training table (text)"})
    run_dir: str = field(default="checkpoints/lm", metadata={"help": "our run's folder with positions.parquet"})
    reference: str = field(
        default="checkpoints/provenance/reference.safetensors",
        metadata={"help": "independent reference model (checkpoint path or models:/name/version)"},
    )
    suspects: tuple[str, ...] = field(default=(), metadata={"help": "checkpoint paths or models:/name/version URIs"})
    n_permutations: int = field(default=999, metadata={"help": "permutations for the exact permutation p-value"})
    seed: int = field(default=0, metadata={"help": "seed of the permutations"})
    batch_size: int = field(default=64, metadata={"help": "rows per scoring batch"})
    out_dir: str = field(default="artifacts/test_provenance", metadata={"help": "results table and per-suspect losses"})

    def __post_init__(self) -> None:
        if not self.suspects:
            raise ValueError("suspects must list at least one checkpoint path or models:/ URI")
        if self.n_permutations < 1:
            raise ValueError("n_permutations must be positive")
