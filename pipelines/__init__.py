"""DVC stage entry points: ``python -m pipelines.<stage>``. Glue only: config, run recorder, library calls, outputs."""
