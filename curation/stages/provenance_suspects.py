"""Stage provenance_suspects: demo suspects for test_provenance — one derived from our LM (continued training), one
independent (one epoch of a small GPT) —, an independent reference model (our LM's architecture, one epoch in its own
order: a reference of another architecture leaves per-example difficulty in ``suspect − reference`` loss and costs
the query test power), a null bank of more models like the reference (it calibrates the query test of suspects of
our architecture for our one order and reference), and text sampled from both suspects (the observational tests' suspect texts)."""

from pathlib import Path

import polars as pl

from curation.executors import map_shards
from curation.io import atomic_path, read_table, write_parquet
from curation.models.base import adapter_model_config, load_adapter_model
from curation.models.checkpoints import CheckpointInfo, save_checkpoint
from curation.models.gpt import ByteGPTAdapter
from curation.progress import progress_bar
from curation.provenance.config import ProvenanceSuspectsConfig
from curation.provenance.generate import sample_texts
from curation.provenance.retrain import ScratchModel, train_from_scratch, train_in_order
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "provenance_suspects"


def _save(folder: Path, name: str, adapter, state: dict, step: int, lr: float, note: str) -> None:
    info = CheckpointInfo(adapter=adapter.name, model_config=adapter_model_config(adapter), step=step,
                          learning_rate=lr, extra={"provenance_demo": note})
    save_checkpoint(folder / f"{name}.safetensors", state, info)


def main(cfg: ProvenanceSuspectsConfig) -> None:
    train, other = read_table(cfg.train_data), read_table(cfg.other_data)
    with RunRecorder(STAGE, cfg) as rec, atomic_path(cfg.out_dir, is_dir=True) as tmp:
        adapter, base, _ = load_adapter_model(cfg.base_checkpoint)
        derived = train_in_order(adapter, base, other.head(cfg.derive_rows), cfg.derive)
        _save(tmp, "derived", adapter, derived.state_dict(), -(-cfg.derive_rows // cfg.derive.batch_size),
              cfg.derive.learning_rate, f"{cfg.base_checkpoint} + continued training on {cfg.other_data}")
        suspects = {"derived": (adapter, derived)}
        jobs = [ScratchModel("reference", cfg.reference_seed, adapter, cfg.reference_train),
                ScratchModel("independent", cfg.independent_seed, ByteGPTAdapter(cfg.small_model), cfg.small_train),
                *[ScratchModel(f"nulls/null_{j:02d}", cfg.null_seed + j, adapter, cfg.reference_train)
                  for j in range(cfg.null_models)]]
        with progress_bar(total=len(jobs), description="reference, independent and null-bank models") as advance:
            for index, state in map_shards(train_from_scratch, jobs, shared={"frame": train}, config=cfg.executor):
                job = jobs[index]
                _save(tmp, job.name, job.adapter, state, -(-train.height // job.recipe.batch_size),
                      job.recipe.learning_rate, f"trained from scratch on {cfg.train_data}, seed {job.seed}")
                if job.name == "independent":  # rebuilt to sample its text below; the others are only saved
                    model = job.adapter.build_model()
                    model.load_state_dict(state)
                    suspects[job.name] = (job.adapter, model.eval())
                advance(1)
        unused = other.slice(cfg.derive_rows)  # prompts the derived model was not trained on, when there are enough
        source = unused if unused.height >= cfg.text_prompts else other.tail(cfg.text_prompts)
        prompts = source["text"].str.slice(0, 16).to_list()[: cfg.text_prompts]
        for name in ("derived", "independent"):
            texts = sample_texts(*suspects[name], prompts, n_new=cfg.text_chars, seed=cfg.independent_seed)
            write_parquet(pl.DataFrame({"prompt": prompts, "text": texts}), tmp / f"{name}_text.parquet")
        rec.log_metrics({"derived_rows": min(cfg.derive_rows, other.height), "from_scratch_rows": train.height})


def run() -> None:
    """Run this stage on the ``provenance_suspects`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, ProvenanceSuspectsConfig, main)


if __name__ == "__main__":
    run()
