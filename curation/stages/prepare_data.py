"""Stage prepare_data: the multi-domain text corpus and digits with injected label noise."""

from pathlib import Path

import polars as pl

from curation.config.stages import PrepareDataConfig
from curation.data.corpus import build_corpus
from curation.data.digits import build_digits
from curation.io import write_parquet
from curation.reports import HTMLReport, bar_plot
from curation.stages._stage import run_stage
from curation.tracking import RunRecorder

STAGE = "prepare_data"


def main(cfg: PrepareDataConfig) -> None:
    out = Path(cfg.out_dir)
    with RunRecorder(STAGE, cfg) as rec:
        corpus = build_corpus(cfg.corpus)
        for split in ("train", "val"):
            part = corpus.filter(pl.col("split") == split)
            write_parquet(part, out / "corpus" / f"{split}.parquet")
            rec.log_dataset(part, name=f"corpus-{split}", source=str(out / "corpus" / f"{split}.parquet"))
        train, test, noisy = build_digits(cfg.digits)
        write_parquet(train, out / "digits" / "train.parquet")
        write_parquet(test, out / "digits" / "test.parquet")
        write_parquet(noisy, out / "digits" / "noisy_ids.parquet")
        rec.log_dataset(train, name="digits-train", source=str(out / "digits" / "train.parquet"))
        per_domain = corpus.group_by("domain").len().sort("domain")
        report = HTMLReport("prepare_data: demo data", subtitle=f"run {rec.run_id}")
        png = bar_plot(dict(per_domain.iter_rows()), Path("plots") / STAGE / "domains.png",
                       title="passages per domain", ylabel="passages")
        rec.log_artifact(png, "plots")
        report.heading("Corpus passages per domain and split").image(png).table(
            corpus.group_by("domain", "split").len().sort("domain", "split"))
        report.heading("Sample passages").table(corpus.group_by("domain").head(1).select("example_id", "text"))
        report.heading("Injected label noise (digits)").key_values(
            {"train": train.height, "test": test.height, "flipped": noisy.height}).table(noisy.head(20))
        rec.log_report(report.render())
        rec.log_metrics({f"corpus_{d}_passages": n for d, n in per_domain.iter_rows()})
        rec.log_metrics({
            "corpus_train": corpus.filter(pl.col("split") == "train").height,
            "corpus_val": corpus.filter(pl.col("split") == "val").height,
            "digits_train": train.height, "digits_test": test.height, "digits_noisy": noisy.height,
        })


def run() -> None:
    """Run this stage on the ``prepare_data`` block of params.yaml (the DVC entry point)."""
    run_stage(STAGE, PrepareDataConfig, main)


if __name__ == "__main__":
    run()
