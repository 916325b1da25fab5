"""Config dataclasses of the provenance stages (``params.yaml`` blocks ``provenance_suspects``, ``test_provenance``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from curation.executors import ExecutorConfig
from curation.models.gpt import ByteGPTConfig
from curation.provenance.retrain import OrderedTrainConfig


@dataclass(frozen=True, kw_only=True)
class ProvenanceSuspectsConfig:
    """Demo inputs of the provenance test: a suspect derived from our model, an independent model, a reference,
    and text sampled from the two suspects (for the observational tests)."""

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
    reference_train: OrderedTrainConfig = field(
        default_factory=lambda: OrderedTrainConfig(learning_rate=3e-3, batch_size=8),
        metadata={"help": "training of the reference model: our model's architecture (the spec's best reference: same "
                          "architecture and data, another shuffle), one epoch in its own order; match our recipe"},
    )
    small_model: ByteGPTConfig = field(
        default_factory=lambda: ByteGPTConfig(n_layer=2, n_head=2, d_model=64, block_size=128),
        metadata={"help": "architecture of the independent suspect"},
    )
    small_train: OrderedTrainConfig = field(
        default_factory=lambda: OrderedTrainConfig(learning_rate=3e-3, batch_size=32),
        metadata={"help": "training of the independent suspect (one epoch, own shuffle)"},
    )
    reference_seed: int = field(default=1, metadata={"help": "seed (init and order) of the reference model"})
    independent_seed: int = field(default=2, metadata={"help": "seed (init and order) of the independent suspect"})
    null_models: int = field(default=8, metadata={
        "help": "null bank for the query test: this many more models like the reference (our model's architecture, "
                "reference_train), seeds null_seed, null_seed + 1, ..., saved in out_dir/nulls (0: none)"})
    null_seed: int = field(default=100, metadata={"help": "seed of the first null-bank model"})
    executor: ExecutorConfig = field(default_factory=ExecutorConfig, metadata={
        "help": "where the reference, independent and null-bank models train: local (one after another) or ray "
                "(one task each)"})
    text_prompts: int = field(default=10, metadata={
        "help": "suspect texts: prompts (16-char starts of other_data rows after derive_rows, or its last rows when "
                "it is shorter) continued by the derived and by the independent model at temperature 1"})
    text_chars: int = field(default=48, metadata={"help": "suspect texts: sampled characters per prompt"})
    out_dir: str = field(default="checkpoints/provenance", metadata={
        "help": "derived/independent/reference checkpoints, nulls/ (the null bank) and "
                "{derived,independent}_text.parquet"})

    def __post_init__(self) -> None:
        if self.derive_rows < 1:
            raise ValueError("derive_rows must be positive")
        if self.text_prompts < 1 or self.text_chars < 1:
            raise ValueError("text_prompts and text_chars must be positive")
        if self.reference_seed == self.independent_seed:
            raise ValueError("reference_seed and independent_seed must differ (the two models must be independent)")
        if self.null_models < 0 or self.null_models == 1:
            raise ValueError("null_models must be 0 or at least 2 (a null bank needs two models for a z-score)")
        bank = range(self.null_seed, self.null_seed + self.null_models)
        if self.reference_seed in bank or self.independent_seed in bank:
            raise ValueError("null-bank seeds (null_seed ...) must differ from reference_seed and independent_seed")


@dataclass(frozen=True, kw_only=True)
class SimulatedDerivationConfig:
    """Test (b): training every retrained model gets before scoring, in imitation of a suspect's derivation."""

    data: str = field(default="", metadata={
        "help": "table with a text column: other text of the kind a derivation might train on (not the suspect "
                "text, not our last phase); empty = no simulated derivation"})
    offset: int = field(default=0, metadata={"help": "first row of data used"})
    rows: int = field(default=80, metadata={"help": "rows of data used, in order"})
    train: OrderedTrainConfig = field(
        default_factory=lambda: OrderedTrainConfig(learning_rate=3e-4, batch_size=8),
        metadata={"help": "optimisation of the simulated derivation (a fresh optimizer for every retrained model)"})

    def __post_init__(self) -> None:
        if self.offset < 0 or self.rows < 1:
            raise ValueError("offset must be >= 0 and rows positive")


@dataclass(frozen=True, kw_only=True)
class ObserveConfig:
    """Observational tests of suspect texts: (a) span overlap, (b) retraining our run's last phase (spec §2.2-2.3)."""

    methods: tuple[Literal["overlap", "retrain"], ...] = field(
        default=("overlap",), metadata={"help": "tests to run on each suspect text: overlap (cheap), retrain (K+1 "
                                        "retrains of the last phase)"})
    span_chars: int = field(default=16, metadata={"help": "test (a): span length in characters"})
    span_permutations: int = field(default=999, metadata={"help": "test (a): permutations of the exact p-value"})
    boundary: str = field(default="", metadata={
        "help": "test (b): our run's checkpoint taken just before the last phase (path or models:/ URI), or our "
                "training output folder: its last checkpoint at or before the start of the last 'fraction'"})
    fraction: float = field(default=0.1, metadata={
        "help": "test (b): the last fraction of our run's order that follows the boundary checkpoint (spec: 0.01-0.1; "
                "benchmarks/provenance chose 0.2: 10 fine-tuning steps can erase a 10 % phase's imprint)"})
    n_reshuffles: int = field(default=19, metadata={"help": "test (b): K reshuffled retrains (rank p floor 1/(K+1))"})
    retrain_train: OrderedTrainConfig = field(
        default_factory=OrderedTrainConfig,
        metadata={"help": "test (b): optimisation of every retrain (use our run's rate and batch size there)"})
    statistic: Literal["total", "normal_scores"] = field(default="total", metadata={
        "help": "test (b): 'total' log-likelihood (spec) or the sum over samples of per-sample normal scores"})
    control: Literal["none", "boundary_samples"] = field(default="none", metadata={
        "help": "test (b): 'boundary_samples' regresses out each model's log-likelihood of text sampled from the "
                "boundary model with the same prompts (independent of the order, so the test stays exact)"})
    report_p: Literal["normal", "t", "rank"] = field(default="t", metadata={
        "help": "test (b): p-value reported as p_value: normal (spec), t (Student prediction, exact for normal "
                "log-likelihoods) or rank (exact, floor 1/(K+1))"})
    simulate_derivation: SimulatedDerivationConfig = field(default_factory=SimulatedDerivationConfig, metadata={
        "help": "test (b): train every retrained model on other text before scoring, as a derived suspect was "
                "(benchmarks/provenance: raises the z of text from a model fine-tuned for 4 % of our steps)"})
    seed: int = field(default=0, metadata={"help": "seed of permutations, reshuffles and control sampling"})

    def __post_init__(self) -> None:
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError("methods must list overlap and/or retrain, each once")
        if self.span_chars < 1 or self.span_permutations < 1:
            raise ValueError("span_chars and span_permutations must be positive")
        if "retrain" in self.methods:
            if not self.boundary:
                raise ValueError("method retrain needs boundary (our checkpoint before the last phase)")
            if not 0.0 < self.fraction < 1.0:
                raise ValueError(f"fraction={self.fraction} must lie in (0, 1)")
            if self.n_reshuffles < 2:
                raise ValueError("n_reshuffles must be at least 2")


@dataclass(frozen=True, kw_only=True)
class TestProvenanceConfig:
    """Palimpsest query test of suspect models, and observational tests of suspect texts, against our run."""

    __test__ = False  # not a pytest test class despite its name

    train_data: str = field(default="data/corpus/train.parquet", metadata={"help": "our training table (text)"})
    run_dir: str = field(default="checkpoints/lm", metadata={"help": "our run's folder with positions.parquet"})
    reference: str = field(
        default="checkpoints/provenance/reference.safetensors",
        metadata={"help": "independent reference model (checkpoint path or models:/name/version)"},
    )
    suspects: tuple[str, ...] = field(default=(), metadata={"help": "checkpoint paths or models:/name/version URIs"})
    null_models: tuple[str, ...] = field(default=(), metadata={
        "help": "bank of models independent of our run, trained like the independent models to rule out "
                "(checkpoints, models:/ URIs or folders of checkpoints; at least 2): calibrates each suspect's rho "
                "for this order and reference (null_z, null_p_t, null_p_rank)"})
    ensemble_reference: bool = field(default=True, metadata={
        "help": "with a null bank: the reference loss is the mean over the suspect, the reference and the bank, and "
                "the reference joins the bank (far less of one reference's noise; the bank must be trained like the "
                "reference); false: the reference model alone"})
    examine_registered: tuple[str, ...] = field(default=(), metadata={
        "help": "registered model names whose new versions a webhook job examines: the version in "
                "CURATION_MODEL_URI is added to the suspects when it belongs to one of them"})
    suspect_texts: tuple[str, ...] = field(default=(), metadata={
        "help": "files of suspect text (.txt = one text; table with text[, prompt] = one sample a row) for the "
                "observational tests"})
    observe: ObserveConfig = field(default_factory=ObserveConfig, metadata={
        "help": "observational tests run on each suspect text"})
    n_permutations: int = field(default=999, metadata={"help": "permutations for the exact permutation p-value"})
    seed: int = field(default=0, metadata={"help": "seed of the permutations"})
    batch_size: int = field(default=64, metadata={"help": "rows per scoring batch"})
    out_dir: str = field(default="artifacts/test_provenance", metadata={"help": "results table and per-suspect losses"})

    def __post_init__(self) -> None:
        if not self.suspects and not self.suspect_texts and not self.examine_registered:
            raise ValueError("list at least one suspect (checkpoint path or models:/ URI) or suspect text file")
        if self.n_permutations < 1:
            raise ValueError("n_permutations must be positive")
