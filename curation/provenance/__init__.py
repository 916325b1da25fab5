"""Provenance: is a model, or a body of text, derived from one of our training runs?

- ``membership``: per-example membership scores for causal LMs (loss, zlib, reference, Min-K%, Min-K%++).
- ``palimpsest``: the palimpsestic query test (Spearman of training position against reference-normalised loss)
  and the two observational tests (span overlap; retraining the last phase on reshuffled orders).
- ``retrain``: the small explicit-order training loop the observational test (b) and the demo suspects use.
"""
